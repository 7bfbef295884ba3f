"""Train: tokenized train/validation rows -> a fine-tuned model, by the one training loop.

In:  data/tokenize/train.parquet, data/tokenize/validation.parquet, the base model at model.path
Out: data/train/model/   LoRA adapter (train.mode=lora, peft) or full model (train.mode=full; classify:
                         the encoder and classifier.safetensors, the head),
                         safetensors weights + JSON configs only; with train.chat.merge and LoRA:
                         also merged/, the adapter merged into a standalone model (with its tokenizer)
     data/train/live/    dvclive training curve (metrics.json, plots/metrics/**.tsv)
Scratch: data/train/checkpoint/ the last resumable checkpoint (tasks that set checkpoint_every),
     removed once the model is saved. It is not a DVC out on purpose: DVC deletes a stage's outs
     before running it, which would throw away the very checkpoint a rerun after a crash resumes from.
     It holds a fingerprint of the inputs, params and code; a mismatch starts afresh.

The task (tunebuild/tasks/) builds the model and says what one step does; tunebuild/loop.py runs the
steps (AdamW, schedule, clipping, curve, checkpoints, early stopping with the best epoch kept).
Deterministic on CPU.

launch.processes > 1: this module starts that many copies of itself (torch.distributed.run) and
waits; each trains on its share of every global batch (DDP or FSDP, tunebuild/launch.py) and only
rank 0 writes the outputs above.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tunebuild import launch, loop, tasks
from tunebuild.errors import UserError, run
from tunebuild.files import atomic_dir, read_json, write_json
from tunebuild.model import load_tokenizer
from tunebuild.params import (
    DataParams,
    LaunchParams,
    ModelParams,
    TaskParams,
    TrainParams,
    load_params,
)

IN = Path("data/tokenize")
OUT = Path("data/train")
CHECKPOINT = OUT / "checkpoint"


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
    if p.frozen_layers is not None and p.frozen_layers < 0:
        raise UserError("params.yaml: train.frozen_layers: must be 0 or more (0: only the embeddings), or null")
    if p.patience is not None and p.patience < 1:
        raise UserError("params.yaml: train.patience: must be at least 1 (epochs), or null to run every epoch")
    if p.head_init not in (None, "probe", "random"):
        raise UserError(f"params.yaml: train.head_init: '{p.head_init}' is not one of probe, random (or null)")


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
            model.merge_and_unload().save_pretrained(tmp / "merged")
            load_tokenizer(p.model.path).save_pretrained(tmp / "merged")


def train(p: Params) -> None:
    """One process's part: the task's trainer, the loop, and (rank 0) the model."""
    torch.use_deterministic_algorithms(not torch.cuda.is_available())
    t = tasks.load(p.task.name).trainer(p, [IN / "train.parquet", IN / "validation.parquet"])
    launch.seed_dropout(p.train.seed)
    key = loop.fingerprint(list(t.inputs), {"train": asdict(p.train), "model": asdict(p.model),
                                            "launch": asdict(p.launch)}) if t.checkpoint_every else ""
    with loop.curve(OUT / "live") as log:
        loop.run(t.model, t.steps, t.step, t.validate, p.train, log, t.checkpoint_every, CHECKPOINT, key, t.net,
                 t.score)
    final = launch.saved(t.model, t.rebuild)
    if final is not None:
        save(final, p, OUT / "model")
        shutil.rmtree(CHECKPOINT, ignore_errors=True)


def main() -> None:
    p = load_params(Params)
    check(p.train)
    launch.check(p.launch, p.train.batch_size)
    if p.launch.processes > 1 and not tasks.load(p.task.name).MULTI_PROCESS:
        raise UserError(f"params.yaml: launch.processes > 1: task={p.task.name} trains in one process for now; "
                        "use launch=single")
    if p.launch.processes > 1 and not launch.inside():
        try:
            return launch.start(p.launch, "stages.train")
        except UserError:
            shutil.rmtree(OUT / "model", ignore_errors=True)  # rank 0 saves last, but never leave a model then
            raise
    with launch.worker(p.launch):
        train(p)


if __name__ == "__main__":
    run(main, None if launch.inside() else OUT)  # the launcher cleans data/train once, not each worker
