"""The sequence classifier shared by train and evaluate: base encoder, pooling, head, batching,
prediction.

The classifier is the base model's encoder, one text vector per row pooled the way the base was
trained (`model.pooling`: `mean_normalized`, the mean over the real tokens scaled to unit length,
for sentence-transformers models such as all-MiniLM-L6-v2, whose modules.json runs 1_Pooling (mean
tokens) then 2_Normalize; `mean` without the scaling; `cls`: BERT's [CLS] pooler; `auto`: read
from the model folder's modules.json, else cls), dropout and a linear head over the labels. A full
model is saved as the encoder (config.json + model.safetensors, labels in the config) and the head
(classifier.safetensors).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from tunebuild.errors import UserError
from tunebuild.model import quiet_transformers, resolve_model_path
from tunebuild.params import ModelParams
from tunebuild.progress import Progress

HEAD_FILE = "classifier.safetensors"
POOLING = ("mean_normalized", "mean", "cls", "auto")
PROBE_C, PROBE_ITER = 10.0, 2000  # the linear probe: as baselines.embedding_logreg


@dataclass
class Output:
    logits: torch.Tensor
    loss: torch.Tensor | None


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's token vectors over its real tokens (padding excluded)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class Classifier(torch.nn.Module):
    """encoder -> pooled text vector -> dropout -> linear head (`classifier`)."""

    def __init__(self, encoder, num_labels: int, pooling: str):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(encoder.config.hidden_dropout_prob)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def config(self):
        return self.encoder.config

    @property
    def _no_split_modules(self):  # FSDP wraps the encoder's blocks (tunebuild/launch.py)
        return self.encoder._no_split_modules

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "cls":
            return out.pooler_output
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        if self.pooling == "mean_normalized":
            return torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> Output:
        logits = self.classifier(self.dropout(self.pooled(input_ids, attention_mask)))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits.float(), labels)
        return Output(logits, loss)

    def save_pretrained(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(path)
        head = {k: v.detach().contiguous() for k, v in self.classifier.state_dict().items()}
        save_file(head, str(Path(path) / HEAD_FILE))


def freeze_bottom(model: Classifier, layers: int) -> None:
    """The embeddings and the first `layers` transformer blocks stop training (no gradients, no
    optimizer state): backward stops above them."""
    for module in [model.encoder.embeddings, *model.encoder.encoder.layer[:layers]]:
        module.requires_grad_(False)


def detect_pooling(path: str) -> str:
    """How a sentence-transformers folder pools (modules.json -> its Pooling config, Normalize);
    cls for any other model."""
    modules_file = Path(path) / "modules.json"
    if not modules_file.is_file():
        return "cls"
    modules = json.loads(modules_file.read_text())
    kinds = {m.get("type", "").rsplit(".", 1)[-1]: m.get("path", "") for m in modules}
    if "Pooling" not in kinds:
        return "cls"
    config = json.loads((Path(path) / kinds["Pooling"] / "config.json").read_text())
    if not config.get("pooling_mode_mean_tokens"):
        return "cls"
    return "mean_normalized" if "Normalize" in kinds else "mean"


def pooling_of(model: ModelParams, path: str) -> str:
    if model.pooling not in POOLING:
        raise UserError(
            f"params.yaml: model.pooling: '{model.pooling}' is not one of {', '.join(POOLING)}; the "
            "classify task pools the encoder's tokens into one vector as the base was trained "
            "(mean_normalized for sentence-transformers models: see their modules.json; auto reads it)")
    return detect_pooling(path) if model.pooling == "auto" else model.pooling


def encoder_from(path: str, labels: list[str], pooling: str):
    quiet_transformers()
    import transformers

    return transformers.AutoModel.from_pretrained(
        path, add_pooling_layer=pooling == "cls", num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})


def load_base(model: ModelParams, labels: list[str], seed: int) -> Classifier:
    """The base encoder with a fresh head, seeded (the 'untrained head' baseline)."""
    path = resolve_model_path(model.path)
    pooling = pooling_of(model, path)
    encoder = encoder_from(path, labels, pooling)
    torch.manual_seed(seed)
    return Classifier(encoder, len(labels), pooling)


def load_full(path: Path, model: ModelParams, labels: list[str]) -> Classifier:
    """A fully fine-tuned classifier saved by Classifier.save_pretrained."""
    from safetensors.torch import load_file

    pooling = pooling_of(model, resolve_model_path(model.path))
    out = Classifier(encoder_from(str(path), labels, pooling), len(labels), pooling)
    out.classifier.load_state_dict(load_file(str(path / HEAD_FILE)))
    return out


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


def length_batches(ids: list[list[int]], batch_size: int):
    """Row indices in batches of similar length (shortest first), so each pads little."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


@torch.no_grad()
def predict(model, ids: list[list[int]], labels: list[int], batch_size: int, pad_id: int,
            what: str = "") -> tuple[torch.Tensor, float]:
    """Logits for every row (in input order) and the mean loss; with `what`, progress on stderr."""
    model.eval()
    logits = torch.empty((len(ids), model.config.num_labels))
    loss_sum = 0.0
    progress = Progress(what, len(ids))
    for rows in length_batches(ids, batch_size):
        out = model(**collate(ids, labels, rows, pad_id))
        logits[rows] = out.logits.float()
        loss_sum += out.loss.item() * len(rows)
        progress.tick(len(rows))
    return logits, loss_sum / max(len(ids), 1)


@torch.no_grad()
def features(model: Classifier, ids: list[list[int]], batch_size: int, pad_id: int) -> torch.Tensor:
    """The pooled vectors the head sees (no dropout), one row per input, in input order."""
    model.eval()
    out, no_labels = torch.zeros((len(ids), model.config.hidden_size)), [0] * len(ids)
    for rows in length_batches(ids, batch_size):
        batch = collate(ids, no_labels, rows, pad_id)
        out[rows] = model.pooled(batch["input_ids"], batch["attention_mask"]).float()
    return out


def probe_head(model: Classifier, ids: list[list[int]], labels: list[int], batch_size: int,
               pad_id: int) -> None:
    """Start the head as a logistic regression (lbfgs, deterministic) fit on the frozen base's
    pooled vectors of the training rows, so fine-tuning starts where a linear probe ends (LP-FT,
    Kumar et al. 2022). Rows of labels absent from the training rows keep their random start; with
    fewer than two labels nothing changes."""
    if len(set(labels)) < 2:
        return
    import sklearn.linear_model
    from threadpoolctl import threadpool_limits

    x = features(model, ids, batch_size, pad_id).numpy()
    with threadpool_limits(1):
        fit = sklearn.linear_model.LogisticRegression(C=PROBE_C, max_iter=PROBE_ITER).fit(x, labels)
    coef, intercept = torch.tensor(fit.coef_), torch.tensor(fit.intercept_)
    if len(fit.classes_) == 2:  # sklearn's binary model is one row, for classes_[1]: split it
        coef, intercept = torch.cat([-coef, coef]) / 2, torch.cat([-intercept, intercept]) / 2
    rows = torch.tensor(fit.classes_)
    with torch.no_grad():
        model.classifier.weight[rows] = coef.float()
        model.classifier.bias[rows] = intercept.float()
