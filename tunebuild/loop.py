"""The one training loop, for every task: the task supplies the model, the planned steps and the step.

- `run` walks the planned optimizer steps (epoch, batch): the task's `step(batch)` runs forward and
  backward (with its own accumulation and loss scaling) and returns the step's loss; then gradients are
  clipped to norm 1, AdamW steps with the learning rate of a linear warmup/decay schedule, and every
  LOG_EVERY steps the mean loss and the learning rate go to the curve. After each epoch the task's
  `validate()` is logged and printed.
- Early stopping (train.patience, for a task that gives a `score` of its validation metrics): the
  validation also runs before the first step (epoch 0); the trainable weights of the epoch with the
  best score are kept in memory and restored at the end, and training stops after `patience` epochs
  without a better score. The learning-rate schedule is that of the full plan either way.
- Every `checkpoint_every` steps (0: never) a safetensors checkpoint (trainable weights, optimizer
  moments, torch RNG state of every rank, the curve so far) goes to a directory DVC does not touch; a
  rerun with the same inputs, parameters and code (`fingerprint`) resumes from it and ends, on CPU,
  with the same bits as an uninterrupted run.
- Under a launcher (tunebuild/launch.py) every rank runs the same loop on its share of each batch;
  only rank 0 writes the curve and the checkpoints.
- Progress (stderr): a line per LOG_EVERY steps, or sooner when PROGRESS_SECONDS have passed since the last
  one (a real model's step can take seconds), with the rate and the time left; and one per epoch (stdout).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunebuild import launch
from tunebuild.errors import UserError
from tunebuild.files import atomic_dir
from tunebuild.params import TrainParams

LOG_EVERY = 10
PROGRESS_SECONDS = 30.0


def schedule(step: int, total: int, warmup: int) -> float:
    """Linear warmup over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def run(model, steps: list, step_fn: Callable, validate: Callable, p: TrainParams, log: Callable,
        checkpoint_every: int = 0, ckpt_dir: Path | None = None, key: str = "", net=None,
        score: Callable[[dict], tuple] | None = None) -> dict:
    """Train `model` over the planned `steps` (see the module docstring); returns the steps run and the
    validation metrics of the weights kept (with early stopping: `best_epoch` too). `net` is what runs
    forward (the model wrapped by DDP/FSDP; default the model)."""
    net = model if net is None else net
    stopping = p.patience is not None and score is not None
    if stopping and checkpoint_every > 0:
        raise UserError("params.yaml: train.patience: early stopping keeps the best epoch in memory, "
                        "which checkpoints do not hold; set train.patience: null or turn checkpoints off")
    total, warmup = len(steps), int(len(steps) * p.warmup_ratio)
    params = [q for q in model.parameters() if q.requires_grad]
    cuda = next(model.parameters()).device.type == "cuda"
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay, fused=cuda)
    state = load_checkpoint(ckpt_dir, model, opt, key) if checkpoint_every > 0 else None
    state = state or {"fingerprint": key, "step": 0, "history": [], "running": []}
    start, history, running = state["step"], state["history"], state["running"]
    for metrics, at in history:  # the curve of the steps already run, replayed into the new log
        log(metrics, at)
    say(f"resumed from checkpoint at step {start}/{total}" if start else f"{total} steps")
    val, started = state.get("validation", {}), time.perf_counter()
    shown = started

    def record(metrics: dict, at: int) -> None:
        history.append((metrics, at))
        log(metrics, at)

    best, since, done = None, 0, start
    if stopping:
        val = validate()
        record(val, 0)
        best = (score(val), 0, snapshot(model), val)

    for step in range(start, total):
        epoch, batch = steps[step]
        net.train()
        for g in opt.param_groups:
            g["lr"] = p.lr * schedule(step, total, warmup)
        running.append(step_fn(batch))
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if done % LOG_EVERY == 0 or done == total:
            record({"train/loss": sum(running) / len(running), "train/lr": opt.param_groups[0]["lr"]}, done)
            running = []
            progress(done - start, total - start, started, f"step {done}/{total}")
            shown = time.perf_counter()
        elif time.perf_counter() - shown >= PROGRESS_SECONDS:
            progress(done - start, total - start, started, f"step {done}/{total}")
            shown = time.perf_counter()
        if done == total or steps[done][0] != epoch:
            val = validate()
            record(val, done)
            say(f"epoch {epoch + 1}/{p.epochs} step {done}/{total} "
                + " ".join(f"{k.removeprefix('validation/')} {v:.4f}" for k, v in val.items())
                + f" ({time.perf_counter() - started:.0f}s)")
            if best is not None and score(val) > best[0]:
                best, since = (score(val), epoch + 1, snapshot(model), val), 0
            elif best is not None:
                since += 1
            if best is not None and since >= p.patience and done < total:
                say(f"stopped early: {since} epochs without a better validation score")
                break
        if checkpoint_every > 0 and done % checkpoint_every == 0 and done < total:
            save_checkpoint(ckpt_dir, model, opt, done, {"fingerprint": key, "history": history,
                                                         "running": running, "validation": val})
    if best is None:
        return {"steps": done} | val
    restore(model, best[2])
    record({"validation/best_epoch": best[1]}, done)
    say(f"kept epoch {best[1]}: " + " ".join(f"{k.removeprefix('validation/')} {v:.4f}" for k, v in best[3].items()))
    return {"steps": done, "best_epoch": best[1]} | best[3]


def snapshot(model) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights (this rank's shards under FSDP)."""
    return {n: q.detach().clone() for n, q in model.named_parameters() if q.requires_grad}


@torch.no_grad()
def restore(model, saved: dict[str, torch.Tensor]) -> None:
    for n, q in model.named_parameters():
        if n in saved:
            q.copy_(saved[n])


def say(line: str) -> None:
    if launch.rank() == 0:
        print(f"train: {line}", flush=True)


def progress(done: int, total: int, started: float, what: str) -> None:
    """`what`, the rate and the time left, on stderr (no output file changes)."""
    if launch.rank() != 0:
        return
    spent = time.perf_counter() - started
    rate = done / spent if spent > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    print(f"train: {what} {rate:.2f} steps/s, {left:.0f}s left", file=sys.stderr, flush=True)


def loaded_code() -> list[Path]:
    """The files of the project's modules (stages, tunebuild, a task of your own) imported in this process
    that live under the working directory, sorted: the code training runs."""
    root = Path.cwd().resolve()
    files = {Path(m.__file__).resolve() for m in list(sys.modules.values())
             if isinstance(getattr(m, "__file__", None), str) and Path(m.__file__).is_absolute()}
    return sorted(f for f in files if root in f.parents and f.suffix == ".py" and f.is_file()
                  and not {".venv", "site-packages"} & set(f.parts))


def fingerprint(paths: list[Path], params: dict) -> str:
    """What a checkpoint must match to be resumed: input files, parameters, and the code training runs
    (what this process imported from the project: the train stage's import closure, as dvc.yaml lists it)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for path in paths + loaded_code():
        h.update(path.read_bytes())
    return h.hexdigest()


def save_checkpoint(path: Path, model, opt, step: int, state: dict) -> None:
    from safetensors.torch import save_file

    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    tensors = {f"param.{n}": launch.full(q.detach()).cpu().contiguous() for n, q in named}
    for n, q in named:
        for key, value in opt.state.get(q, {}).items():
            tensors[f"opt.{n}.{key}"] = launch.full(value.detach()).cpu().contiguous()
    for r, rng in enumerate(launch.gather(torch.get_rng_state())):
        tensors[f"rng.torch.{r}"] = rng
    if launch.rank() != 0:  # every rank gathers (FSDP shards, RNG states), rank 0 writes
        return
    with atomic_dir(path) as tmp:
        save_file(tensors, tmp / "checkpoint.safetensors",
                  metadata={"state": json.dumps(state | {"step": step})})


def load_checkpoint(path: Path, model, opt, key: str) -> dict | None:
    """Restore weights, optimizer and RNG from a checkpoint made by this very run; None if there is none."""
    from safetensors import safe_open

    file = path / "checkpoint.safetensors"
    if not file.is_file():
        return None
    with safe_open(str(file), "pt") as f:
        state = json.loads(f.metadata()["state"])
        if state["fingerprint"] != key:
            return None
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                kind, _, rest = name.partition(".")
                if kind == "param":
                    params[rest].copy_(launch.like(f.get_tensor(name), params[rest]))
                elif kind == "opt":
                    pname, _, slot = rest.rpartition(".")
                    opt.state[params[pname]][slot] = launch.like(f.get_tensor(name), params[pname])
        torch.set_rng_state(f.get_tensor(f"rng.torch.{launch.rank()}"))
    return state


def curve_logger(path: Path):
    """dvclive writing files only: dvc.yaml declares them, so no git/DVC/experiment side effects."""
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:  # dvclive's git probing fails in a repo without commits
            pass

    return FilesOnlyLive(str(path), dvcyaml=False, save_dvc_exp=False, report=None)


@contextlib.contextmanager
def curve(path: Path):
    """`log(metrics, step)` into dvclive at `path` on rank 0; ignored on the other ranks."""
    if launch.rank() != 0:
        yield lambda metrics, step: None
        return
    with curve_logger(path) as live:
        def log(metrics: dict, step: int) -> None:
            live.step = step
            for k, v in metrics.items():
                live.log_metric(k, round(float(v), 6))
        yield log
