"""Kill stages at random points, then `dvc repro`: the result equals an uninterrupted run.

The stage's process (and anything it started) gets SIGKILL while `dvc repro` runs it.
DVC itself is not killed: DVC writes its own `.dvc/tmp/rwlock` non-atomically, so a
SIGKILL to DVC at the wrong moment can leave that file empty (DVC then asks for it to
be deleted); that is DVC's file, not a stage output.
"""
from __future__ import annotations

import random
import signal
import subprocess
import time

import psutil
import pytest
import yaml

from tests.conftest import ENV, sh

pytestmark = pytest.mark.pipeline
DATA_STAGES = ["ingest", "curate", "split", "tokenize"]


def stage_outs(repo) -> dict[str, dict[str, str]]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: {o["path"]: o["md5"] for o in st.get("outs", [])} for name, st in lock["stages"].items()}


def start(repo, *args) -> subprocess.Popen:
    return subprocess.Popen(["dvc", *args], cwd=repo, env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stage_process(dvc: subprocess.Popen, stage: str, timeout: float = 60) -> psutil.Process | None:
    """The running `python -m stages.<stage>` under this dvc process, once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and dvc.poll() is None:
        for child in psutil.Process(dvc.pid).children(recursive=True):
            try:
                if f"stages.{stage}" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.01)
    return None


def kill_tree(proc: psutil.Process) -> bool:
    """SIGKILL the process and its descendants; False if it had already finished."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return True


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_sigkill_then_repro_equals_uninterrupted(repo_copy, built_repo, stage):
    repo = repo_copy
    expected = stage_outs(built_repo)
    rng = random.Random(stage)
    killed = 0
    for delay in sorted(rng.uniform(0.0, 1.2) for _ in range(3)):
        proc = start(repo, "repro", "--force", "--single-item", stage)
        child = stage_process(proc, stage)
        assert child is not None, f"stage {stage} never started"
        time.sleep(delay)
        killed += kill_tree(child)
        proc.wait(timeout=120)
        # whatever the kill left, no file under its final name is half-written: it is absent or complete
        for path, md5 in expected[stage].items():
            if (repo / path).is_file():
                got = sh(repo, "md5sum", path).stdout.split()[0]
                assert got == md5, f"{path} is under its final name but differs after a kill at {delay:.2f}s"
    assert killed, "every kill came after the stage had finished"
    sh(repo, "dvc", "repro", "tokenize")
    got = stage_outs(repo)
    for name in DATA_STAGES:
        assert got[name] == expected[name], name
    # Temp files a kill left are never outputs; the stage's next run removes them (the repro above
    # may have restored the stage from DVC's run-cache without running it).
    def leftovers() -> list[str]:
        return [p.name for p in (repo / "data" / stage).iterdir() if p.name.startswith(".") and p.name != ".gitignore"]

    assert all(name.endswith(".tmp") or name.startswith(".parts.") for name in leftovers()), leftovers()
    sh(repo, "dvc", "repro", "--force", "--single-item", stage)
    assert leftovers() == []


def test_second_repro_refuses_while_one_runs(repo_copy):
    repo = repo_copy
    first = start(repo, "repro", "--force", "--single-item", "train")
    try:
        time.sleep(3)
        assert first.poll() is None, "the first repro finished too early to test concurrency"
        second = sh(repo, "dvc", "repro", check=False)
        assert second.returncode != 0
        assert "lock" in (second.stdout + second.stderr).lower()
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0, first.stderr
    assert "up to date" in sh(repo, "dvc", "status").stdout
