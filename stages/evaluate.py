"""Evaluate: the tuned model and the untrained-head base, side by side, on one split.

In:  data/tokenize/<evaluate.split>.parquet, data/train/model/, the base model at model.path
Out: data/evaluate/metrics.json      accuracy and macro-F1 of base and tuned, and the gain
     data/evaluate/per_class.json    precision, recall, F1 and support per label (base and tuned)
     data/evaluate/confusion.csv     actual,predicted per row (tuned): `dvc plots show` confusion matrix
     data/evaluate/predictions.parquet  record_id, label, predicted, confidence (tuned)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from stages.lib.errors import UserError, run
from stages.lib.files import write_bytes, write_json, write_parquet
from stages.lib.params import DataParams, ModelParams, load_params
from stages.lib.classifier import load_base, load_split, predict, quiet_transformers

IN = Path("data/tokenize")
MODEL = Path("data/train/model")
OUT = Path("data/evaluate")


@dataclass
class EvaluateParams:
    split: str
    batch_size: int
    seed: int


@dataclass
class Params:
    evaluate: EvaluateParams
    model: ModelParams
    data: DataParams


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> tuple[dict, dict]:
    """The pure core: (accuracy, macro-F1) and per-class precision/recall/F1/support."""
    k = len(labels)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    summary = {"accuracy": round(float(tp.sum() / max(cm.sum(), 1)), 6),
               "macro_f1": round(float(f1[present].mean()) if present.any() else 0.0, 6)}
    per_class = {lab: {"precision": round(float(precision[i]), 6), "recall": round(float(recall[i]), 6),
                       "f1": round(float(f1[i]), 6), "support": int(support[i])} for i, lab in enumerate(labels)}
    return summary, per_class


def load_tuned(p: Params):
    """LoRA adapter on the base (adapter_config.json present) or a full model directory."""
    if (MODEL / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(load_base(p.model, p.data.labels, p.evaluate.seed), str(MODEL))
    quiet_transformers()
    import transformers

    return transformers.AutoModelForSequenceClassification.from_pretrained(str(MODEL))


def confusion_csv(labels: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    lines = ["actual,predicted"] + [f"{labels[a]},{labels[b]}" for a, b in zip(y_true, y_pred)]
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    p = load_params(Params)
    path = IN / f"{p.evaluate.split}.parquet"
    if p.evaluate.split not in ("validation", "test"):
        raise UserError(f"params.yaml: evaluate.split: '{p.evaluate.split}' is not one of validation, test")
    ids, y = load_split(path)
    if not ids:
        raise UserError(f"{path}: no rows to evaluate; check data/split/stats.json")
    torch.use_deterministic_algorithms(True)
    labels, y_true = p.data.labels, np.asarray(y, dtype=np.int64)
    results, per_class = {}, {}
    for name, model in (("base", load_base(p.model, labels, p.evaluate.seed)), ("tuned", load_tuned(p))):
        logits, loss = predict(model, ids, y, p.evaluate.batch_size, model.config.pad_token_id or 0)
        y_pred = logits.argmax(-1).numpy()
        results[name], per_class[name] = scores(y_true, y_pred, labels)
        results[name]["loss"] = round(loss, 6)
    probs = torch.softmax(logits, -1).max(-1).values.numpy()
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in ("accuracy", "macro_f1")}
    records = pl.read_parquet(path, columns=["record_id", "label"]).with_columns(
        predicted=pl.Series([labels[i] for i in y_pred], dtype=pl.String),
        confidence=pl.Series(probs.round(6), dtype=pl.Float64))
    write_json(OUT / "metrics.json", results)
    write_json(OUT / "per_class.json", per_class)
    write_bytes(OUT / "confusion.csv", confusion_csv(labels, y_true, y_pred))
    write_parquet(records, OUT / "predictions.parquet")
    print(f"evaluate ({p.evaluate.split}, {len(ids)} rows): base accuracy {results['base']['accuracy']:.3f}, "
          f"tuned accuracy {results['tuned']['accuracy']:.3f}, tuned macro-F1 {results['tuned']['macro_f1']:.3f}")


if __name__ == "__main__":
    run(main, OUT)
