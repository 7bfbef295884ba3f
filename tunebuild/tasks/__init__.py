"""Tasks: what differs by task, behind one small interface. Stages never branch on a task's name.

A task is one module: tunebuild/tasks/<name>.py for the built-in classify, sft and preference, or any
importable module named by `task.name` when it holds a dot (e.g. `mytasks.regress`, a file
mytasks/regress.py in the project root). It defines, per stage that asks:

  curate    COLUMNS                 the record columns its pandera schema checks
            records(df) -> df       ingested records -> the task's columns, with the `text` the rules see
                                    and the `label` that makes a label_conflict
            schema_rules(p) -> [Rule]   its schema rules (tunebuild.rules.Rule), checked by pandera
            redact(df, rewrite) -> df   PII redaction inside the task's own columns (rewrite:
                                        row -> a function that redacts one text of that row)
            counted_label() -> Expr     the label that curate's stats count (null when none)
  tokenize  tokenizer(p) -> tok;  tokenize(df, tok, p) -> (rows, stats);  lengths(rows) -> Series
  train     trainer(p, inputs) -> Trainer   (the one loop, tunebuild/loop.py, runs its steps)
            MULTI_PROCESS                   whether launch.processes > 1 is supported
  evaluate  evaluate(p) -> Evaluation
  report    describe(p) -> (purpose, instance); card(facts, p) -> dict (tag, metrics, what, base,
            details, limits)

`p` is the stage's typed params (tunebuild.params). Heavy libraries (torch, transformers, peft) are
imported inside the functions that need them, so data stages start fast.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tunebuild.errors import UserError

BUILT_IN = ("classify", "sft", "preference")


def load(name: str) -> ModuleType:
    """The task module named by task.name: a built-in one, or a module path of your own (with a dot)."""
    module = name if "." in name else f"tunebuild.tasks.{name}"
    if "." not in name and name not in BUILT_IN:
        raise UserError(f"params.yaml: task.name: '{name}' is not one of {', '.join(BUILT_IN)} "
                        "(or a module path of your own, such as mytasks.regress)")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise UserError(f"params.yaml: task.name: no module '{module}' (from the project root)") from None
        raise


@dataclass
class Trainer:
    """What a task hands the training loop: the model, the planned optimizer steps (epoch, batch), the
    step (forward + backward of one batch, returning its loss) and the validation after each epoch."""

    model: Any
    steps: list
    step: Callable[[Any], float]
    validate: Callable[[], dict]
    rebuild: Callable[[], Any]        # a fresh model of the same shape (rank 0 gathers FSDP shards into it)
    net: Any = None                   # what runs forward (the model wrapped by DDP/FSDP); default the model
    checkpoint_every: int = 0         # optimizer steps between resumable checkpoints; 0: none
    inputs: tuple[Path, ...] = ()     # files the checkpoint's fingerprint hashes beside params and code


@dataclass
class Evaluation:
    """What a task's evaluation gives the evaluate stage to write."""

    metrics: dict                     # metrics.json
    per_class: dict                   # per_class.json
    confusion: list[tuple[str, str]]  # confusion.csv rows (actual, predicted)
    predictions: Any                  # predictions.parquet (a polars frame)
    label_issues: Any                 # label_issues.parquet (a polars frame)
    summary: str                      # one line for the log


@dataclass(frozen=True)
class EvalInputs:
    """Where the evaluate stage's inputs are (its declared deps)."""

    tokenized_dir: Path = Path("data/tokenize")
    split_dir: Path = Path("data/split")
    model: Path = Path("data/train/model")

    def tokenized(self, split: str) -> Path:
        return self.tokenized_dir / f"{split}.parquet"

    def split(self, split: str) -> Path:
        return self.split_dir / f"{split}.parquet"
