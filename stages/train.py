"""Train: tokenized train/validation rows -> a fine-tuned sequence classifier (classify) or causal LM (sft,
preference).

In:  data/tokenize/train.parquet, data/tokenize/validation.parquet, the base model at model.path
Out: data/train/model/   LoRA adapter (train.mode=lora, peft) or full model (train.mode=full),
                         safetensors weights + JSON configs only; sft with train.chat.merge and LoRA:
                         also merged/, the adapter merged into a standalone model (with its tokenizer)
     data/train/live/    dvclive training curve (metrics.json, plots/metrics/**.tsv)
Scratch: data/train/checkpoint/ (sft, preference) the last resumable checkpoint, removed once the model is saved.
     It is not a DVC out on purpose: DVC deletes a stage's outs before running it, which would throw
     away the very checkpoint a rerun after a crash resumes from (a `persist: true` out would survive,
     but DVC would hash it and record it in dvc.lock, so deleting scratch state would look like a
     changed result). It holds a fingerprint of the inputs, params and code; a mismatch starts afresh.

The loops are plain PyTorch and deterministic on CPU: fixed seeds, deterministic
algorithms; classify: length-grouped batches padded to their own longest row;
sft: tunebuild/causal.py (packing, completion-only loss, checkpoints); preference: DPO from the
starting point train.preference.init (tunebuild/preference.py), the same loop.

launch.processes > 1: this module starts that many copies of itself (torch.distributed.run) and
waits; each trains on its share of every global batch (DDP or FSDP, tunebuild/launch.py) and only
rank 0 writes the outputs above (classify and sft; preference runs in one process).
"""
from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F

from tunebuild import launch
from tunebuild.errors import UserError, run
from tunebuild.files import atomic_dir, read_json, write_json
from tunebuild.classifier import collate, load_base, load_split, predict
from tunebuild.model import resolve_model_path
from tunebuild.params import DataParams, LaunchParams, ModelParams, TaskParams, TrainParams, load_params

IN = Path("data/tokenize")
OUT = Path("data/train")
CHECKPOINT = OUT / "checkpoint"
LOG_EVERY = 10


@dataclass
class Params:
    train: TrainParams
    model: ModelParams
    data: DataParams
    task: TaskParams
    launch: LaunchParams


def check(p: TrainParams) -> None:
    if p.mode not in ("lora", "full"):
        raise UserError(f"params.yaml: train.mode: '{p.mode}' is not one of lora, full; pick with train=lora|full")
    if p.mode == "lora" and p.lora is None:
        raise UserError("params.yaml: train.lora: required when train.mode=lora (r, alpha, dropout, target_modules)")
    if p.batch_size < 1 or p.epochs < 1 or p.lr <= 0:
        raise UserError("params.yaml: train.batch_size, train.epochs and train.lr must be positive")


def check_chat(p: Params) -> None:
    if p.train.chat is None:
        pick = "dpo_lora or train=dpo_full" if p.task.name == "preference" else "sft_lora or train=sft_full"
        raise UserError(f"params.yaml: train.chat: required for task {p.task.name} (grad_accum, packing, ...); "
                        f"pick train={pick}")
    if p.train.chat.grad_accum < 1 or p.train.chat.pack_length < 1 or p.train.chat.checkpoint_every < 0:
        raise UserError("params.yaml: train.chat.grad_accum and pack_length must be positive, checkpoint_every >= 0")


def build_model(p: Params):
    model = load_base(p.model, p.data.labels, p.train.seed)
    if p.train.mode == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = p.train.lora
    config = LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules))
    return get_peft_model(model, config)


def batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within windows of 50 batches by length, shuffle batch order."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 50
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(out), generator=generator).tolist()
    return [out[i] for i in perm]


def schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train(model, train_data, val_data, p: TrainParams, pad_id: int, log, strategy: str = "ddp") -> dict:
    """The loop: AdamW, linear warmup/decay, per-epoch validation; `log(metrics, step)` records the curve.
    Under a launcher each rank runs its share of every global batch (tunebuild/launch.py)."""
    (ids, labels), (val_ids, val_labels) = train_data, val_data
    steps_per_epoch = math.ceil(len(ids) / p.batch_size)
    total = steps_per_epoch * p.epochs if p.max_steps < 0 else min(p.max_steps, steps_per_epoch * p.epochs)
    net = launch.wrap(model, strategy)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, total, int(total * p.warmup_ratio)))
    gen = torch.Generator().manual_seed(p.seed)
    lengths = [len(x) for x in ids]
    step, started, running = 0, time.perf_counter(), []
    for epoch in range(p.epochs):
        model.train()
        for rows in batches(lengths, p.batch_size, gen):
            if step >= total:
                break
            mine, weight = launch.share(rows)
            batch = collate(ids, labels, mine, pad_id)
            logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            loss = F.cross_entropy(logits, batch["labels"], reduction="sum") * weight  # summed over this rank's rows
            (loss * launch.world() / len(rows)).backward()  # averaged over ranks: the global batch's mean
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(); sched.step(); opt.zero_grad(set_to_none=True)  # noqa: E702
            running.append(launch.all_sum(loss.item()) / len(rows))
            step += 1
            if step % LOG_EVERY == 0 or step == total:
                log({"train/loss": sum(running) / len(running), "train/lr": sched.get_last_lr()[0]}, step)
                running = []
        logits, val_loss = predict(launch.unwrap(net), val_ids, val_labels, 64, pad_id)  # every rank, same result
        acc = (logits.argmax(-1) == torch.tensor(val_labels)).float().mean().item() if val_labels else 0.0
        log({"validation/loss": val_loss, "validation/accuracy": acc}, step)
        if launch.rank() == 0:
            print(f"train: epoch {epoch + 1}/{p.epochs} step {step}/{total} val_loss {val_loss:.4f} val_acc {acc:.4f} "
                  f"({time.perf_counter() - started:.0f}s)", flush=True)
        if step >= total:
            break
    return {"steps": step, "validation/loss": val_loss, "validation/accuracy": acc}


def save(model, p: Params, path: Path) -> None:
    """safetensors + JSON only; the adapter names the base model logically, not by a machine path."""
    with atomic_dir(path) as tmp:
        if p.train.mode == "lora":
            model.peft_config["default"].base_model_name_or_path = p.model.name
            model.save_pretrained(tmp, save_embedding_layers=False)
        else:
            model.save_pretrained(tmp)
        (tmp / "README.md").unlink(missing_ok=True)
        adapter = tmp / "adapter_config.json"
        if adapter.exists():  # peft keeps target_modules in a set: sort it for stable bytes
            config = read_json(adapter)
            config["target_modules"] = sorted(config["target_modules"])
            write_json(adapter, config)
        if p.train.chat is not None and p.train.chat.merge and p.train.mode == "lora":
            from transformers import AutoTokenizer

            model.merge_and_unload().save_pretrained(tmp / "merged")
            AutoTokenizer.from_pretrained(resolve_model_path(p.model.path)).save_pretrained(tmp / "merged")


def curve_logger(path: Path):
    """dvclive writing files only: dvc.yaml declares them, so no git/DVC/experiment side effects."""
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self) -> None:  # dvclive's git probing fails in a repo without commits
            pass

    return FilesOnlyLive(str(path), dvcyaml=False, save_dvc_exp=False, report=None)


def logger(live):
    """`log(metrics, step)` into a dvclive Live."""
    def log(metrics: dict, step: int) -> None:
        live.step = step
        for k, v in metrics.items():
            live.log_metric(k, round(float(v), 6))
    return log


@contextlib.contextmanager
def curve(path: Path):
    """`log(metrics, step)` into dvclive at `path` on rank 0; ignored on the other ranks."""
    if launch.rank() != 0:
        yield lambda metrics, step: None
        return
    with curve_logger(path) as live:
        yield logger(live)


def load_chat_split(path: Path) -> tuple[list[list[int]], list[list[int]]]:
    df = pl.read_parquet(path, columns=["input_ids", "labels"])
    return df["input_ids"].to_list(), df["labels"].to_list()


def main_chat(p: Params) -> None:
    """task=sft: the causal-LM loop of tunebuild/causal.py, resumable from data/train/checkpoint/."""
    from tunebuild import causal

    check_chat(p)
    inputs = [IN / "train.parquet", IN / "validation.parquet"]
    train_data, val_data = load_chat_split(inputs[0]), load_chat_split(inputs[1])
    if not train_data[0]:
        raise UserError(f"{inputs[0]}: no training rows; check data/tokenize/stats.json (dropped) and data/curate")
    model = build_chat_model(p)
    launch.seed_dropout(p.train.seed)
    key = causal.fingerprint(inputs, {"train": asdict(p.train), "model": asdict(p.model), "launch": asdict(p.launch)})
    with curve(OUT / "live") as log:
        causal.train_chat(model, train_data, val_data, p.train, model.config.pad_token_id or 0, log,
                          schedule, CHECKPOINT, key, p.launch.strategy)
    final = launch.saved(model, lambda: build_chat_model(p))
    if final is not None:
        save(final, p, OUT / "model")
        shutil.rmtree(CHECKPOINT, ignore_errors=True)


def build_chat_model(p: Params):
    from tunebuild import causal

    model = causal.load_base(p.model)
    torch.manual_seed(p.train.seed)
    return causal.with_lora(model, p.train.lora) if p.train.mode == "lora" else model


def main_preference(p: Params) -> None:
    """task=preference: DPO (tunebuild/preference.py) from the starting point, resumable like sft."""
    from tunebuild import causal, preference

    check_chat(p)
    preference.check(p.train.preference)
    inputs = [IN / "train.parquet", IN / "validation.parquet"]
    train_data, val_data = preference.load_pairs(inputs[0]), preference.load_pairs(inputs[1])
    if not train_data[0]:
        raise UserError(f"{inputs[0]}: no training pairs; check data/tokenize/stats.json (dropped) and data/curate")
    model = preference.load_start(p.model, p.train.preference.init)
    torch.manual_seed(p.train.seed)
    if p.train.mode == "lora":
        model = causal.with_lora(model, p.train.lora)
    key = causal.fingerprint(inputs + preference.init_files(p.train.preference.init),
                             {"train": asdict(p.train), "model": asdict(p.model)})
    with curve_logger(OUT / "live") as live:
        preference.train_dpo(model, train_data, val_data, p.train, model.config.pad_token_id or 0, logger(live),
                             schedule, CHECKPOINT, key)
    save(model, p, OUT / "model")
    shutil.rmtree(CHECKPOINT, ignore_errors=True)


def main() -> None:
    p = load_params(Params)
    check(p.train)
    launch.check(p.launch, p.train.batch_size)
    if p.launch.processes > 1 and p.task.name == "preference":
        raise UserError("params.yaml: launch.processes > 1: task=preference trains in one process for now; "
                        "use launch=single")
    if p.launch.processes > 1 and not launch.inside():
        try:
            return launch.start(p.launch, "stages.train")
        except UserError:
            shutil.rmtree(OUT / "model", ignore_errors=True)  # rank 0 saves last, but never leave a model then
            raise
    with launch.worker(p.launch):
        train_task(p)


def train_task(p: Params) -> None:
    if p.task.name in ("sft", "preference"):
        torch.use_deterministic_algorithms(not torch.cuda.is_available())
        return main_chat(p) if p.task.name == "sft" else main_preference(p)
    torch.use_deterministic_algorithms(True)
    train_data, val_data = load_split(IN / "train.parquet"), load_split(IN / "validation.parquet")
    if not train_data[0]:
        raise UserError(f"{IN / 'train.parquet'}: no training rows; check data/curate/stats.json for rejections")
    model = build_model(p)
    launch.seed_dropout(p.train.seed)
    with curve(OUT / "live") as log:
        train(model, train_data, val_data, p.train, model.config.pad_token_id or 0, log, p.launch.strategy)
    final = launch.saved(model, lambda: build_model(p))
    if final is not None:
        save(final, p, OUT / "model")


if __name__ == "__main__":
    run(main, None if launch.inside() else OUT)  # the launcher cleans data/train once, not each worker
