"""Evaluate: the tuned model, the base and the cheap alternatives to fine-tuning, side by side, on one split.

In:  data/tokenize/{train,<evaluate.split>}.parquet, data/split/{train,<evaluate.split>}.parquet (texts,
     sources, conversations), data/train/model/, the base model at model.path
Out (classify; the base has an untrained head; the cheap alternatives are fit on the train split:
     TF-IDF + logistic regression, logistic regression on the frozen base model's embeddings):
     data/evaluate/metrics.json      accuracy and macro-F1 (scikit-learn's, over all data.labels: tunebuild.metrics;
                                     macro_f1_definition says so) of base, tuned and each cheap alternative,
                                     each with its bootstrap 95% interval (<metric>_ci_lo, <metric>_ci_hi); the
                                     gain over the base; the gain over the best cheap alternative with a paired
                                     interval (gain_over_best_baseline); label_issues: rows checked and flagged
     data/evaluate/per_class.json    precision, recall, F1 and support per label (base and tuned)
     data/evaluate/confusion.csv     actual,predicted per row (tuned): `dvc plots show` confusion matrix
     data/evaluate/predictions.parquet  record_id, label, predicted, confidence (tuned)
     data/evaluate/label_issues.parquet likely label errors of the train split for review (never dropped):
                                     record_id, source, label, suggested, confidence, text
Out (sft; the same files, for a causal LM):
     metrics.json       loss and perplexity over the final answers' tokens; when every reference answer
                        is a JSON object: json_valid and exact_match of greedy answers (base, tuned, gain),
                        with intervals, for the cheap alternatives too: the base prompted zero-shot (the base's
                        own answers) and few-shot (evaluate.few_shot train examples as earlier turns)
     per_class.json     per JSON field: share of answers with that field right (base and tuned)
     confusion.csv      actual,predicted of the first JSON field (tuned; <invalid> when not JSON)
     predictions.parquet  the greedy samples: record_id, reference, base, tuned, few_shot (first
                        task.chat.samples records by record_id, deterministic)
     label_issues.parquet  empty (no labels to check; preference too)
Out (preference; base = the starting point, which is also the reference model):
     metrics.json       loss (DPO), preference_accuracy (the chosen answer scores higher than the rejected
                        one), reward_accuracy and reward_margin (beta * log-ratio to the reference, chosen
                        minus rejected: 0 for the base by definition); with JSON chosen answers,
                        json_valid and exact_match of greedy answers against them (base, tuned, gain)
     per_class.json, confusion.csv  as for sft, against the chosen answers
     predictions.parquet  record_id, chosen, rejected, base, tuned (greedy answers side by side), margin
                        (the tuned model's reward margin on that pair)

The task (tunebuild/tasks/) evaluates; baselines, intervals and label issues: tunebuild/baselines.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunebuild import tasks
from tunebuild.errors import UserError, run
from tunebuild.files import write_bytes, write_json, write_parquet
from tunebuild.params import (
    DataParams,
    EvaluateParams,
    ModelParams,
    TaskParams,
    TrainParams,
    load_params,
)

OUT = Path("data/evaluate")


@dataclass
class Params:
    evaluate: EvaluateParams
    model: ModelParams
    data: DataParams
    task: TaskParams
    train: TrainParams            # task=preference: train.preference (the starting point, beta, loss)


def confusion_csv(rows: list[tuple[str, str]]) -> bytes:
    return ("\n".join(["actual,predicted"] + [f"{a},{b}" for a, b in rows]) + "\n").encode()


def main() -> None:
    p = load_params(Params)
    if p.evaluate.split not in ("validation", "test"):
        raise UserError(f"params.yaml: evaluate.split: '{p.evaluate.split}' is not one of validation, test")
    result = tasks.load(p.task.name).evaluate(p, tasks.EvalInputs())
    write_json(OUT / "metrics.json", result.metrics)
    write_json(OUT / "per_class.json", result.per_class)
    write_bytes(OUT / "confusion.csv", confusion_csv(result.confusion))
    write_parquet(result.predictions, OUT / "predictions.parquet")
    write_parquet(result.label_issues, OUT / "label_issues.parquet")
    print(f"evaluate ({p.evaluate.split}): {result.summary}")


if __name__ == "__main__":
    run(main, OUT)
