"""The causal LM of task=sft and preference, shared by train and evaluate: base model, batches,
completion-only loss. The loop itself is tunebuild/loop.py.

- A model directory with a config and no weights (models/tiny-chat) is randomly initialised with
  seed INIT_SEED, the same in train and evaluate; anything else loads from safetensors only (a
  directory holding pickled weights is refused).
- Batches are rows of whole examples: packed several to a row (train.chat.packing) or one per row.
  position_ids restart at 0 for every example (and for the padding after the last one) and no
  attention mask is passed, so transformers builds a block-causal mask: no token attends across
  an example boundary. The first token of each example is never a target.
- The loss is cross-entropy over assistant tokens only, and the output head runs only on the
  positions that predict one (chunks, recomputed in backward), not on the whole sequence.
- Gradient accumulation (accumulate) normalises the loss over all target tokens of an optimizer
  step; `plan` lays out every optimizer step (epoch, micro-batches of rows) for the loop.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tunebuild import launch
from tunebuild.chat import IGNORE, pack
from tunebuild.errors import UserError
from tunebuild.model import quiet_transformers, resolve_model_path
from tunebuild.params import LoraParams, ModelParams, TrainParams

INIT_SEED = 0
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
