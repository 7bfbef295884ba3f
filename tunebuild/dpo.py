"""Direct Preference Optimization (DPO) of a causal LM (task=preference), shared by train and evaluate.

- Starting point (train.preference.init), which is also the reference model: null = the base model at
  model.path; a LoRA adapter directory (an sft run with train=sft_lora) = that adapter merged into the
  base; a full model directory (an sft run with train=sft_full, or a merged/ directory) = those weights.
  The tokenizer is model.path's in every case.
- Data: the tokenized pairs of tokenize_preference; sequence 2i is pair i's chosen conversation,
  2i+1 its rejected one, labels on the final answer only. A batch row holds whole pairs, chosen and
  rejected side by side without attention across them (causal.make_batch); with train.chat.packing
  several pairs share a row.
- Scores: the log-probability of an answer given its prompt, summed over the answer's tokens (mean per
  token for IPO, as in its paper), from causal.target_logps.
- Reference log-probabilities are computed once, before the first step: with LoRA by the same model
  with its adapter disabled (peft's disable_adapter: the starting weights, no second copy in memory);
  in full fine-tuning by the model before it changes. Cheaper than a frozen copy and a second forward
  pass every step, and the same numbers.
- The loss (dpo_loss), with h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected):
  sigmoid -log sigmoid(beta * h) (DPO), ipo (h - 1 / (2 * beta))^2. Rewards: beta * (policy - ref).
- The loop is tunebuild/loop.py (AdamW, schedule, accumulation, resumable checkpoints).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F

from tunebuild import causal
from tunebuild.errors import UserError
from tunebuild.params import ModelParams, PreferenceTrainParams

LOSSES = ("sigmoid", "ipo")
Sequences = tuple[list[list[int]], list[list[int]]]  # ids and labels; 2i: chosen of pair i, 2i+1: rejected


def check(p: PreferenceTrainParams | None) -> None:
    if p is None:
        raise UserError("params.yaml: train.preference: required for task preference (init, beta, loss); "
                        "pick train=dpo_lora or train=dpo_full")
    if p.loss not in LOSSES:
        raise UserError(f"params.yaml: train.preference.loss: '{p.loss}' is not one of {', '.join(LOSSES)}")
    if p.beta <= 0:
        raise UserError(f"params.yaml: train.preference.beta: {p.beta} must be positive")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, loss: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses, chosen rewards and rejected rewards (see the module docstring)."""
    chosen, rejected = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    h = chosen - rejected
    losses = -F.logsigmoid(beta * h) if loss == "sigmoid" else (h - 1 / (2 * beta)) ** 2
    return losses, beta * chosen.detach(), beta * rejected.detach()


def scores(policy: tuple[torch.Tensor, torch.Tensor], ref: tuple[torch.Tensor, torch.Tensor], beta: float,
           loss: str) -> dict:
    """Mean loss; preference accuracy (the chosen answer scores higher than the rejected one); reward accuracy
    (its reward is higher) and mean reward margin (chosen reward - rejected reward)."""
    if not len(policy[0]):
        return {}
    losses, chosen, rejected = dpo_loss(*policy, *ref, beta, loss)
    mean = lambda x: round(float(x.float().mean()), 6)  # noqa: E731
    return {"loss": mean(losses), "preference_accuracy": mean(policy[0] > policy[1]),
            "reward_accuracy": mean(chosen > rejected), "reward_margin": mean(chosen - rejected)}


def load_start(model: ModelParams, init: str | None, full_training: bool = False, quantize: str | None = None):
    """The starting point (see the module docstring), loaded as causal.load_base loads a base: float32 master weights
    for full fine-tuning, 4 bits for QLoRA (`quantize`: from model.path or a full model directory only)."""
    if init is None:
        return causal.load_base(model, full_training, quantize)
    path = Path(init)
    if (path / "adapter_config.json").is_file():
        import json

        from peft import PeftModel

        trained_on = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if trained_on not in (model.name, model.path):
            raise UserError(f"{path}/adapter_config.json: the adapter was trained on '{trained_on}', but model.name is "
                            f"'{model.name}'; set model to that base model or train.preference.init to another run")
        if quantize is not None:
            raise UserError(f"params.yaml: train.preference.init: '{init}' is a LoRA adapter, which cannot be merged into a "
                            "4-bit base (train.lora.quantize); point init at the sft run's merged model (train.chat.merge: "
                            "true writes data/train/model/merged/, copy it out of data/)")
        return PeftModel.from_pretrained(causal.load_base(model, full_training), str(path)).merge_and_unload()
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise UserError(f"params.yaml: train.preference.init: '{init}' is neither a LoRA adapter directory "
                        "(adapter_config.json) nor a model directory (config.json + *.safetensors); point it at the "
                        "data/train/model of an sft run, copied out of data/ (e.g. models/my-sft)")
    return causal.load_base(replace(model, path=init), full_training, quantize)


def init_files(init: str | None) -> list[Path]:
    """The files of the starting point directory (for the checkpoint fingerprint)."""
    return [] if init is None else sorted(f for f in Path(init).rglob("*") if f.is_file())


def load_pairs(path: Path) -> Sequences:
    """Tokenized pairs (tokenize_preference) as interleaved sequences."""
    df = pl.read_parquet(path, columns=["chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels"])
    return interleave(df)


def interleave(df: pl.DataFrame) -> Sequences:
    ids, labels = [], []
    for c_ids, c_labels, r_ids, r_labels in zip(*(df[c].to_list() for c in (
            "chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels"))):
        ids += [c_ids, r_ids]
        labels += [c_labels, r_labels]
    return ids, labels


def pair_lengths(seqs: Sequences) -> list[int]:
    ids = seqs[0]
    return [len(ids[2 * i]) + len(ids[2 * i + 1]) for i in range(len(ids) // 2)]


def answer_logps(model, seqs: Sequences, rows: list[list[int]], pad_id: int, mean: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores of the chosen and rejected answers of the pairs in `rows` (rows of pair indices), and those pairs."""
    ids, labels = seqs
    batch = causal.make_batch(ids, labels, [[s for i in row for s in (2 * i, 2 * i + 1)] for row in rows], pad_id)
    logps, example = causal.target_logps(model, batch)
    total = logps.new_zeros(len(ids)).index_add(0, example, logps)
    if mean:
        total = total / logps.new_zeros(len(ids)).index_add(0, example, torch.ones_like(logps)).clamp(min=1)
    pairs = torch.tensor([i for row in rows for i in row], device=total.device)
    return total[2 * pairs], total[2 * pairs + 1], pairs


@torch.no_grad()
def all_logps(model, seqs: Sequences, pad_id: int, batch_size: int, mean: bool, what: str = ""
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of every pair's chosen and rejected answers (eval mode, one pair per row, by length); progress on
    stderr when `what` names the job."""
    model.eval()
    n = len(seqs[0]) // 2
    chosen, rejected = torch.zeros(n, device=causal.device()), torch.zeros(n, device=causal.device())
    lengths = pair_lengths(seqs)
    order = sorted(range(n), key=lambda i: lengths[i])
    clock = causal.Progress(what, n)
    for s in range(0, n, batch_size):
        c, r, pairs = answer_logps(model, seqs, [[i] for i in order[s:s + batch_size]], pad_id, mean)
        chosen[pairs], rejected[pairs] = c.float(), r.float()
        clock.tick(len(pairs))
    return chosen, rejected


def disabled_adapter(model):
    """The starting weights: a peft model with its adapter disabled; any other model as it is."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") and hasattr(model, "peft_config") \
        else contextlib.nullcontext()


def reference_logps(model, seqs: Sequences, pad_id: int, batch_size: int, mean: bool, what: str = "",
                    pairs: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference model's scores: with LoRA the model with its adapter disabled; in full fine-tuning the model
    as it is, so call this before training changes it. `pairs`: score only those (the ones training will see;
    the others stay 0)."""
    with disabled_adapter(model):
        if pairs is None:
            return all_logps(model, seqs, pad_id, batch_size, mean, what)
        ids, labels = seqs
        part = ([ids[s] for i in pairs for s in (2 * i, 2 * i + 1)], [labels[s] for i in pairs for s in (2 * i, 2 * i + 1)])
        chosen, rejected = all_logps(model, part, pad_id, batch_size, mean, what)
    n, at = len(ids) // 2, torch.tensor(pairs, dtype=torch.long, device=chosen.device)
    full = torch.zeros(n, device=chosen.device), torch.zeros(n, device=chosen.device)
    full[0][at], full[1][at] = chosen, rejected
    return full
