"""A fourth task, defined only here, to prove the seam (tests/pipeline/test_new_task.py): text -> label
with a bag of hashed words and a linear layer, no pretrained model, no tokenizer files.

It implements the whole task interface of tunebuild/tasks/__init__.py and nothing in stages/ knows it:
the test copies this file into a project as mytasks/keywords.py and sets task.name=mytasks.keywords.
"""
from __future__ import annotations

import hashlib
import json

import polars as pl

from tunebuild.rules import Rule

COLUMNS = {"text": (pl.String, "empty_text"), "label": (pl.String, "unknown_label")}
MULTI_PROCESS = False
BUCKETS = 1024


# ---- curate: its own schema rules ---------------------------------------------------------------------

def records(df: pl.DataFrame) -> pl.DataFrame:
    return df


def redact(df: pl.DataFrame, rewrite: dict) -> pl.DataFrame:
    return df


def counted_label() -> pl.Expr:
    return pl.col("label")


def schema_rules(p) -> list[Rule]:
    labels = list(p.data.labels)
    return [
        Rule("empty_text", "text", lambda col: col.str.strip_chars().str.len_chars() > 0, pl.lit("no text")),
        Rule("unknown_label", "label", lambda col: col.is_in(labels), pl.lit("label not in data.labels")),
    ]


# ---- tokenize: hashed lower-case words ----------------------------------------------------------------

def bucket(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % BUCKETS


def tokenizer(p):
    return bucket


def tokenize(df: pl.DataFrame, tok, p) -> tuple[pl.DataFrame, dict]:
    ids = [[tok(w) for w in (t or "").lower().split()][: p.tokenize.max_length] for t in df["text"].to_list()]
    labels = list(p.data.labels)
    out = df.select("record_id", label_id=pl.col("label").replace_strict(labels, list(range(len(labels))),
                                                                         return_dtype=pl.Int16),
                    input_ids=pl.Series(ids, dtype=pl.List(pl.UInt32)))
    n = out["input_ids"].list.len()
    return out, {"rows": out.height, "tokens": int(n.sum() or 0), "mean_length": round(float(n.mean() or 0), 3),
                 "max_length": int(n.max() or 0), "truncated": 0}


def lengths(rows: pl.DataFrame) -> pl.Series:
    return rows["input_ids"].list.len()


# ---- train: its own model and step, run by the one loop -------------------------------------------------

def model_class():
    import torch

    class BagOfWords(torch.nn.Module):
        def __init__(self, k: int):
            super().__init__()
            self.bag = torch.nn.EmbeddingBag(BUCKETS, k, mode="mean")

        def forward(self, ids: list[list[int]]):
            flat = torch.tensor([i for row in ids for i in row] or [0], dtype=torch.long)
            offsets = torch.tensor([0] + [len(r) for r in ids[:-1]], dtype=torch.long).cumsum(0)
            return self.bag(flat, offsets)

        def save_pretrained(self, path) -> None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
            (path / "config.json").write_text(json.dumps({"buckets": BUCKETS, "labels": self.bag.embedding_dim}))

    return BagOfWords


def load_split(path):
    df = pl.read_parquet(path, columns=["input_ids", "label_id"])
    return df["input_ids"].to_list(), df["label_id"].to_list()


def trainer(p, inputs):
    import torch
    import torch.nn.functional as F

    from tunebuild.tasks import Trainer

    (ids, y), (val_ids, val_y) = load_split(inputs[0]), load_split(inputs[1])
    torch.manual_seed(p.train.seed)
    model = model_class()(len(p.data.labels))
    gen = torch.Generator().manual_seed(p.train.seed)
    steps = [(e, rows) for e in range(p.train.epochs)
             for rows in torch.randperm(len(ids), generator=gen).split(p.train.batch_size)]

    def step(rows) -> float:
        rows = rows.tolist()
        loss = F.cross_entropy(model([ids[i] for i in rows]), torch.tensor([y[i] for i in rows]))
        loss.backward()
        return loss.item()

    def validate() -> dict:
        with torch.no_grad():
            hit = (model(val_ids).argmax(-1) == torch.tensor(val_y)).float().mean().item() if val_ids else 0.0
        return {"validation/accuracy": hit}

    return Trainer(model, steps, step, validate, lambda: model_class()(len(p.data.labels)))


# ---- evaluate ---------------------------------------------------------------------------------------------

def evaluate(p, paths):
    import torch
    from safetensors.torch import load_file

    from tunebuild.tasks import Evaluation
    from tunebuild.tasks.classify import ISSUES

    labels = list(p.data.labels)
    model = model_class()(len(labels))
    model.load_state_dict(load_file(str(paths.model / "model.safetensors")))
    ids, y = load_split(paths.tokenized(p.evaluate.split))
    with torch.no_grad():
        pred = model(ids).argmax(-1).tolist() if ids else []
    accuracy = round(sum(a == b for a, b in zip(pred, y)) / max(len(y), 1), 6)
    records = pl.read_parquet(paths.tokenized(p.evaluate.split), columns=["record_id"]).with_columns(
        predicted=pl.Series([labels[i] for i in pred], dtype=pl.String))
    metrics = {"tuned": {"accuracy": accuracy}, "base": {"accuracy": 0.0}, "gain": {"accuracy": accuracy}}
    return Evaluation(metrics, {}, [(labels[a], labels[b]) for a, b in zip(y, pred)], records,
                      pl.DataFrame(schema=ISSUES), f"{len(y)} rows: accuracy {accuracy:.3f}")


# ---- report -------------------------------------------------------------------------------------------------

def describe(p) -> tuple[str, str]:
    return ("keyword classification (a bag of hashed words).", "one text with one label")


def card(facts: dict, p) -> dict:
    return {"tag": "text-classification", "metrics": [{"type": "accuracy",
                                                       "value": facts["metrics"]["tuned"]["accuracy"]}],
            "what": "to sort texts by their words", "base": "Base = nothing (no pretrained model).",
            "details": "", "limits": "a bag of words knows no word order."}
