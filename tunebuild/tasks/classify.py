"""task=classify: text -> one label of a taxonomy (the embedded default: a support-ticket router).

curate: a non-blank text within curate.min_chars..max_chars and a label from data.labels.
tokenize: the base model's fast tokenizer (tokenizer.json), truncated at tokenize.max_length.
train: the base model (model.path) with a new classification head, LoRA or full; length-grouped
       batches padded to their own longest row; cross-entropy.
evaluate: accuracy and macro-F1 of base (untrained head), tuned and the cheap alternatives (TF-IDF and
       frozen-embedding logistic regressions), with bootstrap intervals; per-class report, confusion,
       likely label errors in train (tunebuild/baselines.py).
"""
from __future__ import annotations

import polars as pl

from tunebuild.rules import Rule

COLUMNS = {"text": (pl.String, "empty_text"), "label": (pl.String, "unknown_label")}
MULTI_PROCESS = True


# ---- curate -------------------------------------------------------------------------------------------

def records(df: pl.DataFrame) -> pl.DataFrame:
    return df


def redact(df: pl.DataFrame, rewrite: dict) -> pl.DataFrame:
    return df  # the text is redacted by curate itself


def counted_label() -> pl.Expr:
    return pl.col("label")


def schema_rules(p) -> list[Rule]:
    c, labels = p.curate, list(p.data.labels)
    n = pl.col("text").str.len_chars().cast(pl.String)
    stripped = lambda col: col.str.strip_chars().str.len_chars()  # noqa: E731
    return [
        Rule("empty_text", "text", lambda col: stripped(col) > 0, pl.lit("text is missing or blank")),
        Rule("too_short", "text", lambda col: (stripped(col) >= c.min_chars) | (stripped(col) == 0),
             pl.format("text has {} characters, fewer than curate.min_chars={}", n, pl.lit(c.min_chars)),
             ("curate.min_chars",)),
        Rule("too_long", "text", lambda col: col.str.len_chars() <= c.max_chars,
             pl.format("text has {} characters, more than curate.max_chars={}", n, pl.lit(c.max_chars)),
             ("curate.max_chars",)),
        Rule("unknown_label", "label", lambda col: col.is_in(labels),
             pl.format("label '{}' is not in data.labels", pl.col("label").fill_null("<missing>")),
             ("data.labels",)),
    ]


# ---- tokenize -----------------------------------------------------------------------------------------

def tokenizer(p):
    from tunebuild.tokens import fast_tokenizer

    return fast_tokenizer(p.model.path, p.tokenize.max_length)


def tokenize(df: pl.DataFrame, tok, p) -> tuple[pl.DataFrame, dict]:
    """Records -> (record_id, label, label_id, input_ids), stats."""
    from tunebuild.tokens import length_stats, list_column

    labels, chunk_rows = p.data.labels, p.tokenize.chunk_rows
    ids: list[list[int]] = []
    truncated = 0
    texts = df["text"].to_list()
    limit = tok.truncation["max_length"] if tok.truncation else None
    for start in range(0, len(texts), chunk_rows):
        encodings = tok.encode_batch_fast(texts[start:start + chunk_rows])
        ids.extend(e.ids for e in encodings)
        truncated += sum(1 for e in encodings if len(e.ids) == limit and e.overflowing)
    out = df.select(
        "record_id", "label",
        label_id=pl.col("label").replace_strict(labels, list(range(len(labels))), return_dtype=pl.Int16),
        input_ids=list_column(ids),
    )
    return out, length_stats(out["input_ids"].list.len()) | {"truncated": truncated}


def lengths(rows: pl.DataFrame) -> pl.Series:
    return rows["input_ids"].list.len()


# ---- train --------------------------------------------------------------------------------------------

def build_model(p):
    """The base model with a fresh head (seeded), LoRA-wrapped with train.mode=lora."""
    from tunebuild.classifier import load_base

    model = load_base(p.model, p.data.labels, p.train.seed)
    if p.train.mode == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = p.train.lora
    config = LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules))
    return get_peft_model(model, config)


def batches(lengths: list[int], batch_size: int, generator) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within windows of 50 batches by length, shuffle batch order."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 50
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(out), generator=generator).tolist()
    return [out[i] for i in perm]


def plan(lengths: list[int], p) -> list[tuple[int, list[int]]]:
    """Every optimizer step, in order: (epoch, rows of the global batch); train.max_steps caps them."""
    import torch

    gen = torch.Generator().manual_seed(p.seed)
    steps = [(epoch, rows) for epoch in range(p.epochs) for rows in batches(lengths, p.batch_size, gen)]
    return steps if p.max_steps < 0 else steps[:p.max_steps]


def trainer(p, inputs: list):
    """Cross-entropy on the global batch's rows; under a launcher each rank runs its share."""
    import torch
    import torch.nn.functional as F

    from tunebuild import launch
    from tunebuild.classifier import collate, load_split, predict
    from tunebuild.errors import UserError
    from tunebuild.tasks import Trainer

    (ids, labels), (val_ids, val_labels) = load_split(inputs[0]), load_split(inputs[1])
    if not ids:
        raise UserError(f"{inputs[0]}: no training rows; check data/curate/stats.json for rejections")
    model = build_model(p)
    net = launch.wrap(model, p.launch.strategy)
    pad_id = model.config.pad_token_id or 0

    def step(rows: list[int]) -> float:
        mine, weight = launch.share(rows)
        batch = collate(ids, labels, mine, pad_id)
        logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        loss = F.cross_entropy(logits, batch["labels"], reduction="sum") * weight  # this rank's rows
        (loss * launch.world() / len(rows)).backward()  # averaged over ranks: the global batch's mean
        return launch.all_sum(loss.item()) / len(rows)

    def validate() -> dict:
        logits, loss = predict(launch.unwrap(net), val_ids, val_labels, 64, pad_id)  # every rank, same result
        acc = (logits.argmax(-1) == torch.tensor(val_labels)).float().mean().item() if val_labels else 0.0
        return {"validation/loss": loss, "validation/accuracy": acc}

    return Trainer(model, plan([len(x) for x in ids], p.train), step, validate, lambda: build_model(p), net)


# ---- evaluate -----------------------------------------------------------------------------------------

ISSUES = {"record_id": pl.String, "source": pl.String, "label": pl.String, "suggested": pl.String,
          "confidence": pl.Float64, "text": pl.String}


def load_tuned(p, model_dir):
    """LoRA adapter on the base (adapter_config.json present) or a full model directory."""
    from tunebuild.classifier import load_base
    from tunebuild.model import quiet_transformers

    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(load_base(p.model, p.data.labels, p.evaluate.seed), str(model_dir))
    quiet_transformers()
    import transformers

    return transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir))


def load_rows(tokenized, split) -> pl.DataFrame:
    """The tokenized rows of a split (record_id, label_id, input_ids) with their text and source, in order."""
    return pl.read_parquet(tokenized, columns=["record_id", "label_id", "input_ids"]).join(
        pl.read_parquet(split, columns=["record_id", "text", "source"]),
        on="record_id", how="left", maintain_order="left")


def issue_table(train: pl.DataFrame, oof, labels: list[str]) -> pl.DataFrame:
    """The train rows whose given label the out-of-fold probabilities confidently contradict, surest first."""
    import numpy as np

    from tunebuild import baselines

    flagged, suggested, confidence = baselines.label_issues(oof, train["label_id"].to_numpy().astype(np.int64))
    return (train.with_columns(label=pl.Series([labels[i] for i in train["label_id"]], dtype=pl.String),
                               suggested=pl.Series([labels[i] for i in suggested], dtype=pl.String),
                               confidence=pl.Series(confidence.round(6), dtype=pl.Float64))
            .filter(pl.Series(flagged)).sort(["confidence", "record_id"], descending=[True, False])
            .select(*ISSUES).cast(ISSUES))


def evaluate(p, paths):
    """Base (untrained head), tuned and the cheap alternatives on the evaluated split, with intervals."""
    import json
    import time

    import numpy as np
    import torch

    from tunebuild import baselines
    from tunebuild.classifier import load_base, predict
    from tunebuild.errors import UserError
    from tunebuild.metrics import DEFINITION, scores
    from tunebuild.tasks import Evaluation

    split = p.evaluate.split
    rows = load_rows(paths.tokenized(split), paths.split(split))
    train = load_rows(paths.tokenized("train"), paths.split("train"))
    ids, y = rows["input_ids"].to_list(), rows["label_id"].to_list()
    if not ids:
        raise UserError(f"{paths.tokenized(split)}: no rows to evaluate; check data/split/stats.json")
    torch.use_deterministic_algorithms(True)
    labels, y_true = p.data.labels, np.asarray(y, dtype=np.int64)
    results, per_class, predicted = {}, {}, {}
    base = load_base(p.model, labels, p.evaluate.seed)
    for name, model in (("base", base), ("tuned", load_tuned(p, paths.model))):
        logits, loss = predict(model, ids, y, p.evaluate.batch_size, model.config.pad_token_id or 0)
        predicted[name] = logits.argmax(-1).numpy()
        results[name], per_class[name] = scores(y_true, predicted[name], labels)
        results[name]["loss"] = round(loss, 6)
    # the embedding baseline's features come from the frozen encoder under the base's untrained head
    cheap, oof, timings = baselines.cheap_classifiers(base.base_model, train, rows, len(labels),
                                                      p.evaluate.batch_size, base.config.pad_token_id or 0,
                                                      p.evaluate.folds, p.evaluate.seed)
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
    records = pl.read_parquet(paths.tokenized(split), columns=["record_id", "label"]).with_columns(
        predicted=pl.Series([labels[i] for i in y_pred], dtype=pl.String),
        confidence=pl.Series(probs.round(6), dtype=pl.Float64))
    best, gain = results["gain_over_best_baseline"]["baseline"], results["gain_over_best_baseline"]
    summary = (f"{len(ids)} rows: base accuracy {results['base']['accuracy']:.3f}, "
               f"tuned accuracy {results['tuned']['accuracy']:.3f}, tuned macro-F1 {results['tuned']['macro_f1']:.3f}; "
               f"{best} accuracy {results['baselines'][best]['accuracy']:.3f} (gain {gain['accuracy']:+.3f} "
               f"[{gain['accuracy_ci_lo']:+.3f}, {gain['accuracy_ci_hi']:+.3f}]); "
               f"{issues.height} likely label errors in {train.height} train rows\n"
               f"evaluate timings (s, cheap alternatives): {json.dumps(timings)}")
    confusion = [(labels[a], labels[b]) for a, b in zip(y_true, y_pred)]
    return Evaluation(results, per_class, confusion, records, issues, summary)


# ---- report -------------------------------------------------------------------------------------------

def describe(p) -> tuple[str, str]:
    """What the data is for, and what one instance is (data card)."""
    return (f"text classification into {len(p.data.labels)} labels ({', '.join(p.data.labels)}).",
            "one text with one label from the taxonomy, identified by `record_id` (a hash of the normalized text)")


def card(facts: dict, p) -> dict:
    """What the model card says for classify: pipeline tag, metrics, what it does, tables. Domain words
    come from data.purpose only."""
    from tunebuild.markdown import table
    from tunebuild.metrics import MACRO_F1, MACRO_F1_NAME, per_class_rows

    m, pc, k = facts["metrics"], facts["per_class"], len(p.data.labels)
    labels = f"one of {len(p.data.labels)} labels: {', '.join(p.data.labels)}"
    what = f"to {p.data.purpose} to {labels}" if p.data.purpose else f"to classify texts into {labels}"
    return {"tag": "text-classification",
            "metrics": [{"type": "accuracy", "value": m["tuned"]["accuracy"]},
                        {"type": "f1", "name": MACRO_F1_NAME.format(k=k), "value": m["tuned"]["macro_f1"]}],
            "what": what,
            "base": "Base = the same model with an untrained classification head. " + MACRO_F1.format(k=k),
            "details": table(["label", "precision", "recall", "f1", "support", "note"], per_class_rows(pc["tuned"])),
            "limits": "labels outside the taxonomy are never predicted. Check per-class recall above before relying "
                      "on rare labels."}
