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
- Precision (model.dtype): evaluation loads the weights in that dtype. Training keeps float32 where it
  is the safe choice: full fine-tuning loads float32 master weights (AdamW's moments are float32 too) and
  computes in model.dtype under autocast; LoRA stores the frozen base in model.dtype and the adapters in
  float32 (peft's default), computing under autocast. float32 on a GPU computes in bfloat16 (autocast), on
  a CPU in float32. float16 scales the loss (LossScale: a step whose gradients overflow is skipped and
  the scale halves), as float16's range needs.
- QLoRA (train.lora.quantize: nf4 | fp4): the frozen base in 4 bits (bitsandbytes, CUDA only), made
  trainable by peft's prepare_model_for_kbit_training, LoRA adapters on top.
- train.gradient_checkpointing recomputes each decoder block in backward (non-reentrant checkpoints).
- model.attn_implementation: flash attention takes packed rows as one long row (cu_seqlens from the
  restarting position_ids, transformers' padding-free path): target_logps flattens the batch for it.
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
from tunebuild.model import check_attention, pretrained, quiet_transformers, torch_dtype
from tunebuild.params import LoraParams, ModelParams, TrainParams

INIT_SEED = 0
HEAD_CHUNK = 8192  # target positions per output-head chunk
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
QUANTIZE = ("nf4", "fp4")
AUTOCAST = "tunebuild_autocast"  # attribute of a loaded base: the dtype it computes in under autocast (None: as stored)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_dtype(model: ModelParams):
    """What the model computes in: model.dtype, but bfloat16 for float32 weights on a GPU (autocast); None: as stored."""
    dtype = torch_dtype(model.dtype)
    if dtype != torch.float32:
        return dtype
    return torch.bfloat16 if device().type == "cuda" else None


def check_quantize(lora: LoraParams | None) -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU: one line saying so otherwise."""
    q = lora.quantize if lora is not None else None
    if q is None:
        return
    if q not in QUANTIZE:
        raise UserError(f"params.yaml: train.lora.quantize: '{q}' is not one of null, {', '.join(QUANTIZE)}")
    if not torch.cuda.is_available():
        raise UserError(f"params.yaml: train.lora.quantize: {q} (QLoRA) loads the base in 4 bits with bitsandbytes, "
                        "which needs a CUDA GPU, and this machine has none; use train=sft_lora or train=dpo_lora")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"params.yaml: train.lora.quantize: {q} (QLoRA) needs bitsandbytes: "
                        "pip install 'tunebuild[qlora]' (or pip install bitsandbytes)")


def load_base(model: ModelParams, full_training: bool = False, quantize: str | None = None):
    """The base causal LM, KV cache off (packed rows need it off): weights in model.dtype, or float32 master
    weights for full fine-tuning, or 4 bits (QLoRA: `quantize`); see the module docstring."""
    quiet_transformers()
    from transformers import AutoConfig, AutoModelForCausalLM

    path, extra = pretrained(model.path)
    dtype = torch.float32 if full_training else torch_dtype(model.dtype)
    extra |= {"dtype": dtype, "attn_implementation": check_attention(model.attn_implementation)}
    if quantize is not None:
        from transformers import BitsAndBytesConfig

        compute = compute_dtype(model) or torch.bfloat16
        extra |= {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quantize, bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True), "device_map": {"": torch.cuda.current_device()}, "dtype": compute}
    if "gguf_file" not in extra and Path(path).is_dir() and not any(Path(path).glob("*.safetensors")):
        pickles = sorted(f for f in Path(path).iterdir() if f.suffix in PICKLES)
        if pickles:
            raise UserError(f"{pickles[0]}: the model's weights are a pickle; tunebuild loads safetensors only "
                            "(convert them, e.g. save_pretrained(..., safe_serialization=True))")
        torch.manual_seed(INIT_SEED)
        base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype,
                                                attn_implementation=extra["attn_implementation"])
    else:
        base = AutoModelForCausalLM.from_pretrained(path, use_safetensors="gguf_file" not in extra or None, **extra)
    if "gguf_file" in extra and hasattr(base.config, "quantization_config"):
        delattr(base.config, "quantization_config")  # de-quantized: a plain float model now, saved as one
    base.config.use_cache = False
    setattr(base, AUTOCAST, compute_dtype(model))
    return base if quantize is not None else base.to(device())


def prepare(model, p: TrainParams):
    """Training settings on a loaded base: gradient checkpointing, k-bit preparation (QLoRA), LoRA."""
    checkpointing = {"gradient_checkpointing_kwargs": {"use_reentrant": False}}
    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=p.gradient_checkpointing,
                                                **checkpointing)
    elif p.gradient_checkpointing:
        model.gradient_checkpointing_enable(**checkpointing)
    return with_lora(model, p.lora) if p.mode == "lora" else model


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


def unwrapped(model):
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def autocast(model):
    """Autocast to the dtype the loaded base computes in (causal.AUTOCAST), or nothing."""
    dtype = getattr(unwrapped(model), AUTOCAST, None)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(next(unwrapped(model).parameters()).device.type, dtype=dtype)


def flat(batch: dict) -> dict:
    """The batch's examples as one row without padding (flash attention's padding-free path: transformers finds
    the examples from the restarting position_ids); the first token of an example is never a target, so no
    token predicts across a boundary."""
    keep = batch["example"] >= 0
    return {k: v[keep][None] for k, v in batch.items()}


def target_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of every target (assistant) token and the example it belongs to; the output head
    runs on those positions only, in chunks recomputed in backward."""
    base = unwrapped(model)
    if str(getattr(base.config, "_attn_implementation", "")).startswith("flash_attention"):
        batch = flat(batch)
    with autocast(model):
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
def mean_loss(model, ids, labels, pad_id: int, batch_size: int, what: str = "") -> float:
    """Mean cross-entropy per assistant token, one example per row (perplexity = exp of it); progress on stderr
    when `what` names the job."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    total, count, clock = 0.0, 0, Progress(what, len(ids))
    for s in range(0, len(order), batch_size):
        loss, n = as_loss(model)(make_batch(ids, labels, [[i] for i in order[s:s + batch_size]], pad_id))
        total, count = total + loss.item(), count + n
        clock.tick(len(order[s:s + batch_size]))
    return total / max(count, 1)


@torch.no_grad()
def example_losses(model, ids, labels, pad_id: int, batch_size: int, what: str = "") -> tuple[list[float], list[int]]:
    """Per example: the summed cross-entropy over its target tokens and their count (one example per row,
    batches of similar lengths)."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    total, count, clock = [0.0] * len(ids), [0] * len(ids), Progress(what, len(ids))
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        logps, example = target_logps(model, make_batch(ids, labels, [[i] for i in rows], pad_id))
        sums = torch.zeros(len(ids), dtype=torch.float64, device=logps.device).index_add(0, example, -logps.double())
        ns = torch.zeros(len(ids), dtype=torch.long, device=logps.device).index_add(0, example, torch.ones_like(example))
        for i in rows:
            total[i], count[i] = float(sums[i]), int(ns[i])
        clock.tick(len(rows))
    return total, count


class Progress:
    """`<what> done/total (rate, time left)` on stderr, at most every EVERY seconds (and at the end); silent when
    `what` is empty. Output files never change with it."""

    EVERY = 10.0

    def __init__(self, what: str, total: int):
        import time

        self.what, self.total, self.done, self.clock = what, total, 0, time.perf_counter
        self.started = self.last = self.clock()

    def tick(self, n: int = 1) -> None:
        import sys

        self.done += n
        now = self.clock()
        if not self.what or launch.rank() != 0 or (now - self.last < self.EVERY and self.done < self.total):
            return
        self.last, spent = now, now - self.started
        left = spent / self.done * (self.total - self.done) if self.done else 0.0
        print(f"{self.what} {self.done}/{self.total} ({spent:.0f}s, ~{left:.0f}s left)", file=sys.stderr, flush=True)


def count_targets(labels: list[list[int]], rows: list[list[int]]) -> int:
    """Target tokens in rows of examples (an example's first token is never one)."""
    return sum(sum(t != IGNORE for t in labels[i][1:]) for row in rows for i in row)


def accumulate(model, batches: list[dict], n_targets: int | None = None, weights: list[float] | None = None,
               scale: LossScale | None = None) -> float:
    """Backward over the micro-batches of one optimizer step: the gradient of the mean loss over all their
    target tokens (as one big batch would give); returns that mean. Under DDP/FSDP `batches` are this
    rank's shares (`weights` from launch.share), `n_targets` counts the global batch's targets, and
    the returned value summed over the ranks is the global mean. With a float16 `scale` the loss is
    multiplied by it in backward and the gradients divided by it afterwards (LossScale.unscale)."""
    n_targets = n_targets or max(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches), 1)
    weights = weights or [1.0] * len(batches)
    factor = scale.value if scale is not None else 1.0
    total = 0.0
    for i, (b, w) in enumerate(zip(batches, weights)):
        with launch.no_sync(model, last=i == len(batches) - 1):
            loss, _ = as_loss(model)(b)
            (loss * (w * launch.world() * factor / n_targets)).backward()
        total += w * loss.item()
    if scale is not None:
        scale.unscale(model)
    return total / n_targets


class LossScale:
    """Dynamic loss scaling for float16 compute (what torch.amp.GradScaler does, kept inside the step so the one
    loop needs no hook): backward runs on loss * value; `unscale` divides the gradients by it, and when one is
    inf/nan drops every gradient (AdamW skips parameters without one: the step changes nothing) and halves
    the value; after GROWTH clean steps the value doubles."""

    GROWTH = 200

    def __init__(self, value: float = 2.0 ** 16):
        self.value, self.clean = value, 0

    def unscale(self, model) -> bool:
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        if finite:
            for g in grads:
                g.div_(self.value)
            self.clean += 1
            if self.clean >= self.GROWTH:
                self.value, self.clean = self.value * 2, 0
        else:
            for q in model.parameters():
                q.grad = None
            self.value, self.clean = max(self.value / 2, 1.0), 0
        return finite


def loss_scale(model) -> LossScale | None:
    """A LossScale when the model computes in float16, else None."""
    return LossScale() if getattr(unwrapped(model), AUTOCAST, None) == torch.float16 else None


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
