"""One clear line for errors a user can cause; a traceback only for our bugs."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable


class UserError(Exception):
    """An error the user can fix: the message names the file/key and what to do."""


def run(main: Callable[[], None], out_dir: "Path | None" = None, fast_exit: bool = False) -> None:
    """Run a stage or CLI entry point; a UserError becomes one line and exit code 2.

    A stage passes its data/<verb>/ directory: temp files left there by a killed
    earlier run are removed first (they were never renamed into place). With
    `fast_exit` (stages whose files are all written and closed when main returns),
    the process ends without tearing down every module it imported (pandas, via
    pandera, alone takes 0.2 s).
    """
    try:
        if out_dir is not None:
            from tunebuild.files import remove_stale_temps

            remove_stale_temps(out_dir)
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if fast_exit:
        exit_now()


def exit_now() -> None:
    """End the process at once, output flushed: no teardown of the imported modules."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
