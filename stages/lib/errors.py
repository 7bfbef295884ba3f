"""One clear line for errors a user can cause; a traceback only for our bugs."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """An error the user can fix: the message names the file/key and what to do."""


def run(main: Callable[[], None]) -> None:
    """Run a stage or CLI entry point; a UserError becomes one line and exit code 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
