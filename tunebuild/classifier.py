"""The sequence classifier shared by train and evaluate: base model, batching, prediction."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from tunebuild.model import quiet_transformers, resolve_model_path
from tunebuild.params import ModelParams


def load_base(model: ModelParams, labels: list[str], seed: int):
    """The base model with a fresh classification head, seeded (the 'untrained head' baseline)."""
    quiet_transformers()
    import transformers

    torch.manual_seed(seed)
    return transformers.AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path(model.path), num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})


def collate(ids: list[list[int]], labels: list[int], rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, i in enumerate(rows):
        input_ids[j, :len(ids[i])] = torch.tensor(ids[i])
        mask[j, :len(ids[i])] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": torch.tensor([labels[i] for i in rows])}


def load_split(path: Path) -> tuple[list[list[int]], list[int]]:
    df = pl.read_parquet(path, columns=["input_ids", "label_id"])
    return df["input_ids"].to_list(), df["label_id"].to_list()


@torch.no_grad()
def predict(model, ids: list[list[int]], labels: list[int], batch_size: int, pad_id: int) -> tuple[torch.Tensor, float]:
    """Logits for every row (in input order) and the mean loss."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    logits = torch.empty((len(ids), model.config.num_labels))
    loss_sum = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        out = model(**collate(ids, labels, rows, pad_id))
        logits[rows] = out.logits.float()
        loss_sum += out.loss.item() * len(rows)
    return logits, loss_sum / max(len(ids), 1)
