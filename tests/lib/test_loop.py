"""The one training loop's resume fingerprint hashes the code training runs, not the whole library."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_fingerprint_hashes_what_training_imports():
    code = ("import stages.train, tunebuild.tasks.sft, tunebuild.causal\n"  # as after trainer()
            "from tunebuild import loop\n"
            "print('\\n'.join(str(f.relative_to(loop.Path.cwd())) for f in loop.loaded_code()))")
    files = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"stages/train.py", "tunebuild/loop.py", "tunebuild/tasks/sft.py", "tunebuild/causal.py"} <= set(files)
    cli_only = {"tunebuild/diff.py", "tunebuild/audit.py", "tunebuild/trace.py", "tunebuild/cli.py"}
    assert not cli_only & set(files)  # editing the diff command keeps sft/preference checkpoints resumable


def test_schedule_warmup_then_linear_decay():
    from tunebuild.loop import schedule

    assert [round(schedule(s, 10, 2), 2) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 0.12]
