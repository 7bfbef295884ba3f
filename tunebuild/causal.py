"""The causal LM of task=sft, shared by train and evaluate: base model, batches, completion-only loss, the loop.

- A model directory with a config and no weights (models/tiny-chat) is randomly initialised with
  seed INIT_SEED, the same in train and evaluate; anything else loads from safetensors only (a
  directory holding pickled weights is refused).
- Batches are rows of whole examples: packed several to a row (train.chat.packing) or one per row.
  position_ids restart at 0 for every example (and for the padding after the last one) and no
  attention mask is passed, so transformers builds a block-causal mask: no token attends across
  an example boundary. The first token of each example is never a target.
- The loss is cross-entropy over assistant tokens only, and the output head runs only on the
  positions that predict one (chunks, recomputed in backward), not on the whole sequence.
- The loop: AdamW, linear warmup/decay set by hand each step, gradient accumulation with the loss
  normalised over all target tokens of an optimizer step, per-epoch validation. Every
  train.chat.checkpoint_every steps it saves a safetensors checkpoint (trainable weights, optimizer
  moments, torch RNG state, the curve so far) to a directory DVC does not touch; a rerun with the
  same inputs, parameters and code resumes from it and ends, on CPU, with the same bits.
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
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tunebuild import launch
from tunebuild.chat import IGNORE, pack
from tunebuild.classifier import quiet_transformers
from tunebuild.errors import UserError
from tunebuild.files import atomic_dir
from tunebuild.model import resolve_model_path
from tunebuild.params import LoraParams, ModelParams, TrainParams

INIT_SEED = 0
LOG_EVERY = 10
HEAD_CHUNK = 8192  # target positions per output-head chunk
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_base(model: ModelParams):
    """The base causal LM in fp32 (bf16 autocast on GPU), KV cache off (packed rows need it off)."""
    quiet_transformers()
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_path(model.path)
    if Path(path).is_dir() and not any(Path(path).glob("*.safetensors")):
        pickles = sorted(f for f in Path(path).iterdir() if f.suffix in PICKLES)
        if pickles:
            raise UserError(f"{pickles[0]}: the model's weights are a pickle; tunebuild loads safetensors only "
                            "(convert them, e.g. save_pretrained(..., safe_serialization=True))")
        torch.manual_seed(INIT_SEED)
        base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.float32)
    else:
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    base.config.use_cache = False
    return base.to(device())


def with_lora(model, lora: LoraParams):
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if list(lora.target_modules) == ["all-linear"] else list(lora.target_modules)
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha,
                                            lora_dropout=lora.dropout, target_modules=targets))


def rows_of(lengths: list[int], order: list[int], packing: bool, row_length: int) -> list[list[int]]:
    return pack(lengths, order, max(row_length, max(lengths, default=0))) if packing else [[i] for i in order]


def make_batch(ids: list[list[int]], labels: list[list[int]], rows: list[list[int]], pad_id: int) -> dict:
    """Rows of whole examples -> input_ids, labels, position_ids (restarting per example), right-padded, and
    `example`: the index of the example at each position (-1 on padding)."""
    width = max(sum(len(ids[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    example = torch.full((len(rows), width), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        t = 0
        for i in row:
            n = len(ids[i])
            input_ids[b, t:t + n] = torch.tensor(ids[i])
            targets[b, t + 1:t + n] = torch.tensor(labels[i][1:])
            positions[b, t:t + n] = torch.arange(n)
            example[b, t:t + n] = i
            t += n
        positions[b, t:] = torch.arange(width - t)  # padding: a sequence of its own, never a target
    dev = device()
    return {"input_ids": input_ids.to(dev), "labels": targets.to(dev), "position_ids": positions.to(dev),
            "example": example.to(dev)}


def _head_logps(head, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -F.cross_entropy(head(hidden).float(), target, reduction="none")


def target_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of every target (assistant) token and the example it belongs to; the output head
    runs on those positions only, in chunks recomputed in backward."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device().type == "cuda" else contextlib.nullcontext()
    with autocast:
        hidden = base.get_decoder()(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                    use_cache=False).last_hidden_state
        target = batch["labels"][:, 1:]
        keep = target != IGNORE
        h, t = hidden[:, :-1][keep], target[keep]
        head = base.get_output_embeddings()
        parts = [checkpoint(_head_logps, head, h[s:s + HEAD_CHUNK], t[s:s + HEAD_CHUNK], use_reentrant=False)
                 if torch.is_grad_enabled() else _head_logps(head, h[s:s + HEAD_CHUNK], t[s:s + HEAD_CHUNK])
                 for s in range(0, len(t), HEAD_CHUNK)]
    logps = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
    return logps, batch["example"][:, 1:][keep]


def completion_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """(sum of cross-entropy over assistant tokens, their count)."""
    logps, _ = target_logps(model, batch)
    return -logps.sum(), len(logps)


class CompletionLoss(torch.nn.Module):
    """completion_loss as a module's forward: DDP and FSDP wrap a module and act in its forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> tuple[torch.Tensor, int]:
        return completion_loss(self.model, batch)


def as_loss(model) -> torch.nn.Module:
    """`model` when it already is a CompletionLoss (inside DDP/FSDP or not), else one around it."""
    return model if isinstance(launch.unwrap(model), CompletionLoss) else CompletionLoss(model)


@torch.no_grad()
def mean_loss(model, ids, labels, pad_id: int, batch_size: int) -> float:
    """Mean cross-entropy per assistant token, one example per row (perplexity = exp of it)."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    total, count = 0.0, 0
    for s in range(0, len(order), batch_size):
        loss, n = as_loss(model)(make_batch(ids, labels, [[i] for i in order[s:s + batch_size]], pad_id))
        total, count = total + loss.item(), count + n
    return total / max(count, 1)


def count_targets(labels: list[list[int]], rows: list[list[int]]) -> int:
    """Target tokens in rows of examples (an example's first token is never one)."""
    return sum(sum(t != IGNORE for t in labels[i][1:]) for row in rows for i in row)


def accumulate(model, batches: list[dict], n_targets: int | None = None, weights: list[float] | None = None) -> float:
    """Backward over the micro-batches of one optimizer step: the gradient of the mean loss over all their
    target tokens (as one big batch would give); returns that mean. Under DDP/FSDP `batches` are this
    rank's shares (`weights` from launch.share), `n_targets` counts the global batch's targets, and
    the returned value summed over the ranks is the global mean."""
    n_targets = n_targets or max(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches), 1)
    weights = weights or [1.0] * len(batches)
    total = 0.0
    for i, (b, w) in enumerate(zip(batches, weights)):
        with launch.no_sync(model, last=i == len(batches) - 1):
            loss, _ = as_loss(model)(b)
            (loss * (w * launch.world() / n_targets)).backward()
        total += w * loss.item()
    return total / n_targets


def plan(lengths: list[int], p: TrainParams) -> list[tuple[int, list[list[list[int]]]]]:
    """Every optimizer step, in order: (epoch, micro-batches of rows of example indices)."""
    steps = []
    for epoch in range(p.epochs):
        gen = torch.Generator().manual_seed(p.seed * 100_003 + epoch)
        rows = rows_of(lengths, torch.randperm(len(lengths), generator=gen).tolist(), p.chat.packing,
                       p.chat.pack_length)
        micro = [rows[i:i + p.batch_size] for i in range(0, len(rows), p.batch_size)]
        steps += [(epoch, micro[i:i + p.chat.grad_accum]) for i in range(0, len(micro), p.chat.grad_accum)]
    return steps if p.max_steps < 0 else steps[:p.max_steps]


def fingerprint(paths: list[Path], params: dict) -> str:
    """What a checkpoint must match to be resumed: input files, parameters, and the code training runs
    (the project's modules loaded by now: the train stage's own import closure, as dvc.yaml lists it)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for path in paths + loaded_code():
        h.update(path.read_bytes())
    return h.hexdigest()


def loaded_code() -> list[Path]:
    """The files of the project's modules (stages, tunebuild) imported in this process, sorted."""
    root = Path(__file__).resolve().parents[1]
    files = {Path(m.__file__).resolve() for name, m in list(sys.modules.items())
             if name.split(".")[0] in ("stages", "tunebuild") and getattr(m, "__file__", None)}
    return sorted(f for f in files if root in f.parents)


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
        save_file(tensors, tmp / "checkpoint.safetensors", metadata={"state": json.dumps(state | {"step": step})})


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


def train_chat(model, train_data, val_data, p: TrainParams, pad_id: int, log: Callable, schedule: Callable,
               ckpt_dir: Path, key: str, strategy: str = "ddp") -> dict:
    """The sft loop (see the module docstring); returns the last validation loss and the steps run. Under a
    launcher each rank trains on its share of every micro-batch (tunebuild/launch.py)."""
    (ids, labels), (val_ids, val_labels) = train_data, val_data
    net = launch.wrap(CompletionLoss(model), strategy)

    def step(micro: list[list[list[int]]]) -> float:
        shares = [launch.share(rows) for rows in micro]
        batches = [make_batch(ids, labels, rows, pad_id) for rows, _ in shares]
        n_targets = max(sum(count_targets(labels, rows) for rows in micro), 1)
        return launch.all_sum(accumulate(net, batches, n_targets, [w for _, w in shares]))

    def validate() -> dict:
        return {"validation/loss": mean_loss(net, val_ids, val_labels, pad_id, p.batch_size)}

    return run_steps(model, plan([len(x) for x in ids], p), step, validate, p, log, schedule, ckpt_dir, key, net)


def run_steps(model, steps: list, step_fn: Callable, validate: Callable, p: TrainParams, log: Callable,
              schedule: Callable, ckpt_dir: Path, key: str, net=None) -> dict:
    """The loop over planned optimizer steps (epoch, micro-batches): `step_fn(micro)` runs forward and backward
    and returns the step's loss, `validate()` the validation metrics (after each epoch); AdamW, the schedule,
    clipping, the curve and resumable checkpoints. Returns the steps run and the last validation metrics.
    `net` is what runs forward (the model wrapped by DDP/FSDP; default the model itself)."""
    net = model if net is None else net
    total, warmup = len(steps), int(len(steps) * p.warmup_ratio)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay, fused=device().type == "cuda")
    state = load_checkpoint(ckpt_dir, model, opt, key) if p.chat.checkpoint_every > 0 else None
    state = state or {"fingerprint": key, "step": 0, "history": [], "running": []}
    start, history, running = state["step"], state["history"], state["running"]
    for metrics, at in history:  # the curve of the steps already run, replayed into the new log
        log(metrics, at)
    if start and launch.rank() == 0:
        print(f"train: resumed from checkpoint at step {start}/{total}", flush=True)
    val, started = state.get("validation", {}), time.perf_counter()

    def record(metrics: dict, at: int) -> None:
        history.append((metrics, at))
        log(metrics, at)

    for step in range(start, total):
        epoch, micro = steps[step]
        net.train()
        for g in opt.param_groups:
            g["lr"] = p.lr * schedule(step, total, warmup)
        running.append(step_fn(micro))
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if done % LOG_EVERY == 0 or done == total:
            record({"train/loss": sum(running) / len(running), "train/lr": opt.param_groups[0]["lr"]}, done)
            running = []
        if done == total or steps[done][0] != epoch:
            val = validate()
            record(val, done)
            if launch.rank() == 0:
                print(f"train: epoch {epoch + 1}/{p.epochs} step {done}/{total} "
                      + " ".join(f"{k.removeprefix('validation/')} {v:.4f}" for k, v in val.items())
                      + f" ({time.perf_counter() - started:.0f}s)", flush=True)
        if p.chat.checkpoint_every > 0 and done % p.chat.checkpoint_every == 0 and done < total:
            save_checkpoint(ckpt_dir, model, opt, done, {"fingerprint": key, "history": history, "running": running,
                                                         "validation": val})
    return {"steps": total} | val
