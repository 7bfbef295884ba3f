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

Baselines, intervals and label issues: tunebuild/baselines.py.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from tunebuild import baselines
from tunebuild.classifier import load_base, predict, quiet_transformers
from tunebuild.errors import UserError, run
from tunebuild.files import write_bytes, write_json, write_parquet
from tunebuild.metrics import DEFINITION, scores
from tunebuild.params import DataParams, EvaluateParams, ModelParams, TaskParams, TrainParams, load_params

IN = Path("data/tokenize")
SPLIT = Path("data/split")
MODEL = Path("data/train/model")
OUT = Path("data/evaluate")
ISSUES = {"record_id": pl.String, "source": pl.String, "label": pl.String, "suggested": pl.String,
          "confidence": pl.Float64, "text": pl.String}


@dataclass
class Params:
    evaluate: EvaluateParams
    model: ModelParams
    data: DataParams
    task: TaskParams
    train: TrainParams            # task=preference: train.preference (the starting point, beta, loss)


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


def json_hits(answers: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """Per answer, when every reference is a JSON object (a structured-output dataset): is it a JSON object
    (json_valid), is it the reference (exact_match); {} otherwise."""
    refs = [as_json(r) for r in references]
    if not refs or not all(isinstance(r, dict) for r in refs):
        return {}
    got = [as_json(a) for a in answers]
    return {"json_valid": np.array([isinstance(g, dict) for g in got], dtype=np.float64),
            "exact_match": np.array([g == r for g, r in zip(got, refs)], dtype=np.float64)}


def json_scores(answers: list[str], references: list[str]) -> tuple[dict, dict]:
    """JSON validity and exact match overall, and the match rate per field, when every reference is a JSON
    object (a structured-output dataset); ({}, {}) otherwise."""
    hits = json_hits(answers, references)
    if not hits:
        return {}, {}
    refs, got = [as_json(r) for r in references], [as_json(a) for a in answers]
    share = lambda hits: round(sum(hits) / len(refs), 6)
    per_field = {f: share(isinstance(g, dict) and g.get(f) == r.get(f) for g, r in zip(got, refs))
                 for f in sorted(set().union(*refs))}
    return {k: round(float(v.mean()), 6) for k, v in hits.items()}, per_field


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
    from tunebuild import causal

    if (MODEL / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(causal.load_base(p.model), str(MODEL))
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(str(MODEL), use_safetensors=True).to(causal.device())


def few_shot_prompts(p: Params, tok, template: str, record_ids: list[str]) -> tuple[list[list[int]], int]:
    """The prompts of the evaluated records after the first evaluate.few_shot train conversations (by
    record_id), rendered with the chat template and encoded as tokenize encodes (no special tokens added);
    and how many examples that is."""
    from tunebuild import chat

    shots = (pl.read_parquet(SPLIT / "train.parquet", columns=["record_id", "messages"]).sort("record_id")
             .head(p.evaluate.few_shot)["messages"].to_list())
    rows = pl.DataFrame({"record_id": record_ids}, schema={"record_id": pl.String}).join(
        pl.read_parquet(SPLIT / f"{p.evaluate.split}.parquet", columns=["record_id", "messages"]),
        on="record_id", how="left", maintain_order="left")
    texts = [chat.render(tok, template, baselines.few_shot(shots, chat.prompt_turns(m)), generation_prompt=True)
             for m in rows["messages"].to_list()]
    return [e.ids for e in tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)], len(shots)


def check_context(model, prompts: list[list[int]], max_new_tokens: int, shots: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(map(len, prompts), default=0)
    if limit and longest + max_new_tokens > limit:
        raise UserError(f"params.yaml: evaluate.few_shot: {shots} examples make a prompt of {longest} tokens, which "
                        f"with task.chat.max_new_tokens={max_new_tokens} exceeds the model's {limit} positions; "
                        "lower evaluate.few_shot")


def main_chat(p: Params, path: Path) -> None:
    """task=sft: loss/perplexity, greedy samples and JSON scores of base and tuned; the base prompted
    zero-shot (its own answers) and few-shot as the cheap alternatives."""
    from tunebuild import causal, chat

    df, sample, prompts, tok, stop = chat_inputs(p, path, "input_ids")
    ids, labels = df["input_ids"].to_list(), df["labels"].to_list()
    refs = sample["completion"].to_list()
    structured = bool(json_hits(refs, refs))  # the cheap alternatives are scored on JSON answers only
    few, shots = few_shot_prompts(p, tok, chat.pick_template(tok, p.task.chat.template),
                                  sample["record_id"].to_list()) if structured else ([], 0)
    results, per_field, answers = {}, {}, {}
    for name, load in (("base", lambda: causal.load_base(p.model)), ("tuned", lambda: load_tuned_causal(p))):
        torch.manual_seed(p.evaluate.seed)
        model = load()
        loss = causal.mean_loss(model, ids, labels, model.config.pad_token_id or 0, p.evaluate.batch_size)
        answers[name] = generate(model, tok, prompts, p.task.chat.max_new_tokens, stop)
        if name == "base" and structured:
            check_context(model, few, p.task.chat.max_new_tokens, shots)
            answers["few_shot"] = generate(model, tok, few, p.task.chat.max_new_tokens, stop)
        scores_, per_field[name] = json_scores(answers[name], refs)
        results[name] = {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 6)} | scores_
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    if structured:
        hits = {name: json_hits(answers[key], refs) for name, key in
                (("tuned", "tuned"), ("zero_shot", "base"), ("few_shot", "few_shot"))}
        scored, results["gain_over_best_baseline"] = baselines.compare(
            {name: {m: baselines.mean_of(h) for m, h in v.items()} for name, v in hits.items()},
            ["zero_shot", "few_shot"], "exact_match", len(refs), p.evaluate.bootstrap, p.evaluate.seed)
        results["tuned"] |= scored["tuned"]
        results["base"] |= scored["zero_shot"]
        results["baselines"] = {"zero_shot": scored["zero_shot"], "few_shot": scored["few_shot"] | {"shots": shots}}
    write_json_outputs(results, per_field, refs, answers["tuned"])
    write_parquet(sample.select("record_id", reference="completion").with_columns(
        **{name: pl.Series(answers.get(name, [None] * sample.height), dtype=pl.String)
           for name in ("base", "tuned", "few_shot")}), OUT / "predictions.parquet")
    print(f"evaluate ({p.evaluate.split}, {len(ids)} rows, {sample.height} generated): " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["gain"]))


def chat_inputs(p: Params, path: Path, ids_column: str):
    """sft, preference: the split's rows by record_id, the sample to generate for, its prompts, the tokenizer
    and the tokens that end an answer."""
    from transformers import AutoTokenizer

    from tunebuild import chat
    from tunebuild.model import resolve_model_path

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
    and greedy samples of both (tunebuild/preference.py)."""
    from tunebuild import preference

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


def load_rows(split: str) -> pl.DataFrame:
    """The tokenized rows of a split (record_id, label_id, input_ids) with their text and source, in order."""
    return pl.read_parquet(IN / f"{split}.parquet", columns=["record_id", "label_id", "input_ids"]).join(
        pl.read_parquet(SPLIT / f"{split}.parquet", columns=["record_id", "text", "source"]),
        on="record_id", how="left", maintain_order="left")


def issue_table(train: pl.DataFrame, oof: np.ndarray, labels: list[str]) -> pl.DataFrame:
    """The train rows whose given label the out-of-fold probabilities confidently contradict, surest first."""
    flagged, suggested, confidence = baselines.label_issues(oof, train["label_id"].to_numpy().astype(np.int64))
    return (train.with_columns(label=pl.Series([labels[i] for i in train["label_id"]], dtype=pl.String),
                               suggested=pl.Series([labels[i] for i in suggested], dtype=pl.String),
                               confidence=pl.Series(confidence.round(6), dtype=pl.Float64))
            .filter(pl.Series(flagged)).sort(["confidence", "record_id"], descending=[True, False])
            .select(*ISSUES).cast(ISSUES))


def main() -> None:
    p = load_params(Params)
    path = IN / f"{p.evaluate.split}.parquet"
    if p.evaluate.split not in ("validation", "test"):
        raise UserError(f"params.yaml: evaluate.split: '{p.evaluate.split}' is not one of validation, test")
    if p.task.name in ("sft", "preference"):
        (main_chat if p.task.name == "sft" else main_preference)(p, path)
        return write_parquet(pl.DataFrame(schema=ISSUES), OUT / "label_issues.parquet")  # no labels to check
    rows, train = load_rows(p.evaluate.split), load_rows("train")
    ids, y = rows["input_ids"].to_list(), rows["label_id"].to_list()
    if not ids:
        raise UserError(f"{path}: no rows to evaluate; check data/split/stats.json")
    torch.use_deterministic_algorithms(True)
    labels, y_true = p.data.labels, np.asarray(y, dtype=np.int64)
    results, per_class, predicted = {}, {}, {}
    base = load_base(p.model, labels, p.evaluate.seed)
    for name, model in (("base", base), ("tuned", load_tuned(p))):
        logits, loss = predict(model, ids, y, p.evaluate.batch_size, model.config.pad_token_id or 0)
        predicted[name] = logits.argmax(-1).numpy()
        results[name], per_class[name] = scores(y_true, predicted[name], labels)
        results[name]["loss"] = round(loss, 6)
    # the embedding baseline's features come from the frozen encoder under the base's untrained head
    cheap, oof, timings = baselines.cheap_classifiers(base.base_model, train, rows, len(labels), p.evaluate.batch_size,
                                                      base.config.pad_token_id or 0, p.evaluate.folds, p.evaluate.seed)
    start = time.perf_counter()
    scored, results["gain_over_best_baseline"] = baselines.compare(
        {name: baselines.label_metrics(y_true, pred, len(labels)) for name, pred in (predicted | cheap).items()},
        list(cheap), "accuracy", len(ids), p.evaluate.bootstrap, p.evaluate.seed)
    issues = issue_table(train, oof, labels)
    timings["intervals_and_label_issues"] = round(time.perf_counter() - start, 3)
    for name in predicted:
        results[name] |= scored[name]
    results["baselines"] = {name: scored[name] for name in cheap}
    results["label_issues"] = {"checked": train.height, "flagged": issues.height}
    y_pred = predicted["tuned"]
    probs = torch.softmax(logits, -1).max(-1).values.numpy()
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in ("accuracy", "macro_f1")}
    results["macro_f1_definition"] = DEFINITION.format(k=len(labels))
    records = pl.read_parquet(path, columns=["record_id", "label"]).with_columns(
        predicted=pl.Series([labels[i] for i in y_pred], dtype=pl.String),
        confidence=pl.Series(probs.round(6), dtype=pl.Float64))
    write_json(OUT / "metrics.json", results)
    write_json(OUT / "per_class.json", per_class)
    write_bytes(OUT / "confusion.csv", confusion_csv(labels, y_true, y_pred))
    write_parquet(records, OUT / "predictions.parquet")
    write_parquet(issues, OUT / "label_issues.parquet")
    best, gain = results["gain_over_best_baseline"]["baseline"], results["gain_over_best_baseline"]
    print(f"evaluate ({p.evaluate.split}, {len(ids)} rows): base accuracy {results['base']['accuracy']:.3f}, "
          f"tuned accuracy {results['tuned']['accuracy']:.3f}, tuned macro-F1 {results['tuned']['macro_f1']:.3f}; "
          f"{best} accuracy {results['baselines'][best]['accuracy']:.3f} (gain {gain['accuracy']:+.3f} "
          f"[{gain['accuracy_ci_lo']:+.3f}, {gain['accuracy_ci_hi']:+.3f}]); "
          f"{issues.height} likely label errors in {train.height} train rows")
    print(f"evaluate timings (s, cheap alternatives): {json.dumps(timings)}")


if __name__ == "__main__":
    run(main, OUT)
