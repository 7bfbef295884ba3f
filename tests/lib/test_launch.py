"""tunebuild/launch.py without processes: shares of a global batch, checks, the failure message, conf/launch."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from tunebuild import launch
from tunebuild.compose import compose, validate
from tunebuild.errors import UserError
from tunebuild.params import LaunchParams

ROOT = Path(__file__).resolve().parents[2]


def as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))


def test_ranks_split_every_global_batch_without_overlap(monkeypatch):
    rows = list(range(7))
    shares = []
    for r in range(3):
        as_rank(monkeypatch, r, 3)
        shares.append(launch.share(rows))
    assert [s for s, _ in shares] == [[0, 3, 6], [1, 4], [2, 5]] and {w for _, w in shares} == {1.0}
    as_rank(monkeypatch, 2, 3)
    assert launch.share([10, 11]) == ([10], 0.0)  # no row of its own: runs one, weighted 0


def test_one_process_is_the_whole_batch(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch.share([1, 2, 3]) == ([1, 2, 3], 1.0) and launch.all_sum(2.5) == 2.5


@pytest.mark.parametrize("params, batch, needle", [
    (LaunchParams(3, "gloo", "ddp"), 8, "multiple of the number of processes"),
    (LaunchParams(2, "mpi", "ddp"), 8, "launch.backend"),
    (LaunchParams(2, "gloo", "zero3"), 8, "launch.strategy"),
    (LaunchParams(0, "gloo", "ddp"), 8, "launch.processes"),
    (LaunchParams(2, "nccl", "fsdp"), 8, "one GPU per process"),
])
def test_check_names_the_key(monkeypatch, params, batch, needle):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(UserError, match=needle):
        launch.check(params, batch)


def failure(tmp_path, rank: int, exitcode: int, message: str | None = None, time_ns: int = 0) -> ProcessFailure:
    path = tmp_path / f"error-{rank}.json"
    if message is not None:
        path.write_text(json.dumps({"message": message, "timestamp": 1, "time_ns": time_ns}))
    return ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file=str(path))


def test_the_first_failure_is_named_not_its_effects(tmp_path):
    # rank 1 raised first; rank 0 lost contact after; rank 2 was stopped by the launcher
    failures = {0: failure(tmp_path, 0, 2, "lost contact with another rank: Connection closed by peer", 20),
                1: failure(tmp_path, 1, 2, "data/x.parquet: bad row 3", 10),
                2: failure(tmp_path, 2, -signal.SIGTERM)}
    assert launch.describe(failures, 3).startswith("train: rank 1 of 3 failed (exit code 2): data/x.parquet: bad row 3;")
    # a rank killed from outside records nothing: it died before its peers noticed
    failures[2] = failure(tmp_path, 2, -signal.SIGKILL)
    assert "rank 2 of 3 failed (killed by SIGKILL): no error recorded" in launch.describe(failures, 3)


@pytest.mark.parametrize("option", ["single", "ddp", "fsdp"])
def test_launch_options_compose_and_validate(option):
    text = compose(ROOT / "conf", [f"launch={option}"])
    validate(text, "conf/")
    section = yaml.safe_load(text)["launch"]
    assert section == yaml.safe_load((ROOT / f"conf/launch/{option}.yaml").read_text())
    assert (section["processes"] > 1) == (option != "single")
