"""Experiments end to end: a queued sweep over a Hydra group, compare, apply, push, promote the best."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from tunebuild import revs
from tunebuild.promote import experiments
from tests.conftest import sh

pytestmark = pytest.mark.pipeline


def wait_for_queue(repo, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sh(repo, "dvc", "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(2)
    raise AssertionError(f"the queue did not finish:\n{status}")


def test_queue_compare_apply_push_promote(repo_copy, tmp_path):
    repo = repo_copy
    # remotes first: `dvc exp push` reads the DVC remote from the experiment's own commit
    git_remote, dvc_remote = tmp_path / "origin.git", tmp_path / "storage"
    sh(tmp_path, "git", "init", "-q", "--bare", str(git_remote))
    sh(repo, "git", "remote", "add", "origin", str(git_remote))
    sh(repo, "dvc", "remote", "add", "-d", "storage", str(dvc_remote))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "pipeline run, remotes")
    out = sh(repo, "dvc", "exp", "run", "--queue", "-S", "train=lora,full").stdout
    assert out.count("Queued experiment") == 2
    sh(repo, "dvc", "queue", "start", "-j", "1")
    status = wait_for_queue(repo)
    assert status.count("Success") == 2, status

    exps = {e["name"]: e for e in experiments(json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout))}
    assert len(exps) == 2
    mode = {name: yaml.safe_load(revs.read_text("params.yaml", e["rev"], repo))["train"]["mode"] for name, e in exps.items()}
    assert sorted(mode.values()) == ["full", "lora"]
    lora, full = (next(n for n, m in mode.items() if m == want) for want in ("lora", "full"))
    key = "data/evaluate/metrics.json:tuned.loss"
    assert key in exps[lora]["metrics"] and key in exps[full]["metrics"]

    diff = json.loads(sh(repo, "dvc", "metrics", "diff", exps[lora]["rev"], exps[full]["rev"], "--json").stdout)
    assert "tuned.loss" in diff["data/evaluate/metrics.json"]  # full and LoRA training end differently

    # apply: the workspace takes the experiment's params and outputs
    sh(repo, "dvc", "exp", "apply", full)
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["mode"] == "full"
    assert json.loads((repo / "data/evaluate/metrics.json").read_text())["tuned"]["loss"] == exps[full]["metrics"][key]

    # push: the experiment's git ref to the git remote, its outputs to the DVC remote
    sh(repo, "dvc", "exp", "push", "origin", full)
    refs = sh(repo, "git", "ls-remote", str(git_remote)).stdout
    assert "refs/exps/" in refs and refs.rstrip().endswith(f"/{full}") and exps[full]["rev"] in refs
    outs = yaml.safe_load(revs.read_text("dvc.lock", exps[full]["rev"], repo))["stages"]["train"]["outs"]
    model = next(o["md5"] for o in outs if o["path"] == "data/train/model")
    assert (dvc_remote / "files/md5" / model[:2] / model[2:]).is_file()  # the trained model's directory listing

    # promote: the lowest test loss becomes a branch, with its cards readable in git
    best = min(exps, key=lambda n: exps[n]["metrics"][key])
    out = sh(repo, "tunebuild", "promote", "--metric", "tuned.loss", "--min", "--branch", "best-model").stdout
    assert f"promoted experiment {best}" in out
    assert sh(repo, "git", "show", "best-model:params.yaml").stdout == revs.read_text("params.yaml", exps[best]["rev"], repo)
    assert sh(repo, "git", "show", "best-model:dvc.lock").stdout == revs.read_text("dvc.lock", exps[best]["rev"], repo)
    for card in ("model_card.md", "data_card.md"):
        copy = sh(repo, "git", "show", f"best-model:cards/{card}").stdout
        assert copy.startswith("<!-- A copy of data/report/") and copy.endswith(
            revs.read_text(f"data/report/{card}", exps[best]["rev"], repo))
    again = sh(repo, "tunebuild", "promote", "--metric", "tuned.loss", "--branch", "best-model", check=False)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = sh(repo, "tunebuild", "promote", "--metric", "no.such", "--branch", "x", check=False)
    assert bad.returncode == 2 and "tuned.loss" in bad.stderr  # names the metrics that tell the experiments apart
