"""Evaluate: the tuned model and the base, side by side, on one split.

In:  data/tokenize/<evaluate.split>.parquet, data/train/model/, the base model at model.path
Out (classify; the base has an untrained head):
     data/evaluate/metrics.json      accuracy and macro-F1 of base and tuned, and the gain
     data/evaluate/per_class.json    precision, recall, F1 and support per label (base and tuned)
     data/evaluate/confusion.csv     actual,predicted per row (tuned): `dvc plots show` confusion matrix
     data/evaluate/predictions.parquet  record_id, label, predicted, confidence (tuned)
Out (sft; the same files, for a causal LM):
     metrics.json       loss and perplexity over the final answers' tokens; when every reference answer
                        is a JSON object: json_valid and exact_match of greedy answers (base, tuned, gain)
     per_class.json     per JSON field: share of answers with that field right (base and tuned)
     confusion.csv      actual,predicted of the first JSON field (tuned; <invalid> when not JSON)
     predictions.parquet  the greedy samples: record_id, reference, base, tuned (first task.chat.samples
                        records by record_id, deterministic)
Out (preference; base = the starting point, which is also the reference model):
     metrics.json       loss (DPO), preference_accuracy (the chosen answer scores higher than the rejected
                        one), reward_accuracy and reward_margin (beta * log-ratio to the reference, chosen
                        minus rejected: 0 for the base by definition); with JSON chosen answers,
                        json_valid and exact_match of greedy answers against them (base, tuned, gain)
     per_class.json, confusion.csv  as for sft, against the chosen answers
     predictions.parquet  record_id, chosen, rejected, base, tuned (greedy answers side by side), margin
                        (the tuned model's reward margin on that pair)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from stages.lib.errors import UserError, run
from stages.lib.files import write_bytes, write_json, write_parquet
from stages.lib.params import DataParams, ModelParams, TaskParams, TrainParams, load_params
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
    task: TaskParams
    train: TrainParams            # task=preference: train.preference (the starting point, beta, loss)


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


def as_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_scores(answers: list[str], references: list[str]) -> tuple[dict, dict]:
    """JSON validity and exact match overall, and the match rate per field, when every reference is a JSON
    object (a structured-output dataset); ({}, {}) otherwise."""
    refs = [as_json(r) for r in references]
    if not refs or not all(isinstance(r, dict) for r in refs):
        return {}, {}
    got = [as_json(a) for a in answers]
    fields = sorted(set().union(*refs))
    share = lambda hits: round(sum(hits) / len(refs), 6)  # noqa: E731
    summary = {"json_valid": share(isinstance(g, dict) for g in got), "exact_match": share(g == r for g, r in zip(got, refs))}
    per_field = {f: share(isinstance(g, dict) and g.get(f) == r.get(f) for g, r in zip(got, refs)) for f in fields}
    return summary, per_field


@torch.no_grad()
def generate(model, tok, prompts: list[list[int]], max_new_tokens: int, stop: list[int]) -> list[str]:
    """Greedy answers, one prompt at a time (no padding: the same bits whatever the batch)."""
    model.eval()
    out = []
    for ids in prompts:
        x = torch.tensor([ids], device=model.device)
        y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                           do_sample=False, eos_token_id=stop, pad_token_id=stop[0], use_cache=True)
        out.append(tok.decode(y[0, len(ids):], skip_special_tokens=True).strip())
    return out


def load_tuned_causal(p: Params):
    from stages.lib import causal

    if (MODEL / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(causal.load_base(p.model), str(MODEL))
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(str(MODEL), use_safetensors=True).to(causal.device())


def main_chat(p: Params, path: Path) -> None:
    """task=sft: loss/perplexity, greedy samples and JSON scores of base and tuned."""
    from stages.lib import causal

    df, sample, prompts, tok, stop = chat_inputs(p, path, "input_ids")
    ids, labels = df["input_ids"].to_list(), df["labels"].to_list()
    refs = sample["completion"].to_list()
    results, per_field, answers = {}, {}, {}
    for name, load in (("base", lambda: causal.load_base(p.model)), ("tuned", lambda: load_tuned_causal(p))):
        torch.manual_seed(p.evaluate.seed)
        model = load()
        loss = causal.mean_loss(model, ids, labels, model.config.pad_token_id or 0, p.evaluate.batch_size)
        answers[name] = generate(model, tok, prompts, p.task.chat.max_new_tokens, stop)
        scores_, per_field[name] = json_scores(answers[name], refs)
        results[name] = {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 6)} | scores_
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    write_json_outputs(results, per_field, refs, answers["tuned"])
    write_parquet(sample.select("record_id", reference="completion").with_columns(
        base=pl.Series(answers["base"], dtype=pl.String), tuned=pl.Series(answers["tuned"], dtype=pl.String)),
        OUT / "predictions.parquet")
    print(f"evaluate ({p.evaluate.split}, {len(ids)} rows, {sample.height} generated): " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["tuned"]))


def chat_inputs(p: Params, path: Path, ids_column: str):
    """sft, preference: the split's rows by record_id, the sample to generate for, its prompts, the tokenizer
    and the tokens that end an answer."""
    from transformers import AutoTokenizer

    from stages.lib import chat
    from stages.lib.model import resolve_model_path

    if p.task.chat is None:
        raise UserError(f"params.yaml: task.chat: required for task {p.task.name}; use task={p.task.name}")
    df = pl.read_parquet(path).sort("record_id")
    if not df.height:
        raise UserError(f"{path}: no rows to evaluate; check data/tokenize/stats.json")
    sample = df if p.task.chat.samples < 0 else df.head(p.task.chat.samples)
    prompts = [x[:n] for x, n in zip(sample[ids_column].to_list(), sample["prompt_length"].to_list())]
    tok = AutoTokenizer.from_pretrained(resolve_model_path(p.model.path))
    stop = [tok.eos_token_id] + [tok.convert_tokens_to_ids(t) for t in chat.END_OF_TURN.values()
                                 if t in tok.get_vocab() and tok.convert_tokens_to_ids(t) != tok.eos_token_id]
    return df, sample, prompts, tok, stop


def write_json_outputs(results: dict, per_field: dict, refs: list[str], answers: list[str]) -> None:
    """metrics.json, per_class.json and confusion.csv (the first JSON field of the references vs the answers)."""
    first = next(iter(per_field["tuned"]), None)
    got = [as_json(a) for a in answers]
    rows = [(str(as_json(r)[first]), str(g[first]) if isinstance(g, dict) and first in g else "<invalid>")
            for r, g in zip(refs, got)] if first else []
    write_json(OUT / "metrics.json", results)
    write_json(OUT / "per_class.json", per_field)
    write_bytes(OUT / "confusion.csv", ("\n".join(["actual,predicted"] + [f"{a},{b}" for a, b in rows]) + "\n").encode())


def main_preference(p: Params, path: Path) -> None:
    """task=preference: DPO scores of the starting point (base) and the tuned model against the starting point,
    and greedy samples of both (stages/lib/preference.py)."""
    from stages.lib import preference

    preference.check(p.train.preference)
    pref = p.train.preference
    df, sample, prompts, tok, stop = chat_inputs(p, path, "chosen_ids")
    seqs, mean = preference.interleave(df), pref.loss == "ipo"
    refs = sample["chosen"].to_list()
    results, per_field, answers, logps = {}, {}, {}, {}

    def load_tuned():
        if (MODEL / "adapter_config.json").is_file():
            from peft import PeftModel

            return PeftModel.from_pretrained(preference.load_start(p.model, pref.init), str(MODEL))
        return load_tuned_causal(p)

    for name, load in (("base", lambda: preference.load_start(p.model, pref.init)), ("tuned", load_tuned)):
        torch.manual_seed(p.evaluate.seed)
        model = None  # one model in memory at a time
        model = load()
        logps[name] = preference.all_logps(model, seqs, model.config.pad_token_id or 0, p.evaluate.batch_size, mean)
        answers[name] = generate(model, tok, prompts, p.task.chat.max_new_tokens, stop)
        found, per_field[name] = json_scores(answers[name], refs)
        results[name] = preference.scores(logps[name], logps["base"], pref.beta, pref.loss) | found
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    write_json_outputs(results, per_field, refs, answers["tuned"])
    _, chosen, rejected = preference.dpo_loss(*logps["tuned"], *logps["base"], pref.beta, pref.loss)
    margin = (chosen - rejected)[:sample.height].cpu().numpy().round(6)
    write_parquet(sample.select("record_id", "chosen", "rejected").with_columns(
        base=pl.Series(answers["base"], dtype=pl.String), tuned=pl.Series(answers["tuned"], dtype=pl.String),
        margin=pl.Series(margin, dtype=pl.Float64)), OUT / "predictions.parquet")
    print(f"evaluate ({p.evaluate.split}, {df.height} pairs, {sample.height} generated): " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["tuned"]))


def main() -> None:
    p = load_params(Params)
    path = IN / f"{p.evaluate.split}.parquet"
    if p.evaluate.split not in ("validation", "test"):
        raise UserError(f"params.yaml: evaluate.split: '{p.evaluate.split}' is not one of validation, test")
    if p.task.name == "sft":
        return main_chat(p, path)
    if p.task.name == "preference":
        return main_preference(p, path)
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
