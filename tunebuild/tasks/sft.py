"""task=sft: chat examples -> a causal LM trained on the assistant turns (completion-only loss).

curate: `messages` = [{role, content}], roles in order, ending with the assistant; the rules see the
       non-system turns as text, and the final answer is the label (two answers to one prompt: a
       label_conflict).
tokenize: the chat template renders each conversation; labels -100 but on assistant turns
       (tunebuild/chat.py); task.chat.truncation drops an example or cuts its prompt's start.
train: packed rows without attention across examples, gradient accumulation, LoRA or full
       (tunebuild/causal.py), resumable checkpoints.
evaluate: loss and perplexity; greedy answers of base and tuned, and when the answers are JSON objects
       json_valid / exact_match against the base prompted zero-shot and few-shot.
"""
from __future__ import annotations

import polars as pl

from tunebuild import conversations as conv
from tunebuild.rules import Rule

COLUMNS = {"messages": (conv.MESSAGES, "empty_content")}
MULTI_PROCESS = True


# ---- curate -------------------------------------------------------------------------------------------

def label() -> pl.Expr:
    last = pl.col("messages").list.last().struct
    return pl.when(last.field("role") == "assistant").then(last.field("content"))


def records(df: pl.DataFrame) -> pl.DataFrame:
    """The JSON conversation in `text` (ingest) as `messages`; the rules then see the non-system turns
    as `text` and the final assistant answer as `label`."""
    return df.with_columns(messages=pl.col("text").str.json_decode(conv.MESSAGES)).with_columns(
        text=conv.turn_text("messages"), label=label())


def redact(df: pl.DataFrame, rewrite: dict) -> pl.DataFrame:
    return conv.redact(df, ["messages"], rewrite).with_columns(label=label()) if rewrite else df


def counted_label() -> pl.Expr:
    return pl.lit(None, pl.String).alias("label")


def schema_rules(p) -> list[Rule]:
    return conv.turn_rules("messages", p.curate.max_chars)


# ---- tokenize -----------------------------------------------------------------------------------------

def tokenizer(p):
    """The model's tokenizer (transformers) and the chat template it renders with."""
    from tunebuild import chat
    from tunebuild.errors import UserError
    from tunebuild.model import quiet_transformers, resolve_model_path

    quiet_transformers()
    from transformers import AutoTokenizer

    if p.task.chat is None:
        raise UserError(f"params.yaml: task.chat: required for task {p.task.name} (template, truncation, ...); "
                        f"use task={p.task.name} (conf/task/{p.task.name}.yaml)")
    if p.task.chat.truncation not in ("drop", "left"):
        raise UserError(f"params.yaml: task.chat.truncation: '{p.task.chat.truncation}' is not one of drop, left")
    tok = AutoTokenizer.from_pretrained(resolve_model_path(p.model.path))
    if tok.chat_template is None and p.task.chat.template not in chat.TEMPLATES:
        raise UserError(f"params.yaml: task.chat.template: '{p.task.chat.template}' is not one of "
                        f"{', '.join(chat.TEMPLATES)} (the tokenizer has no template of its own)")
    return tok, chat.pick_template(tok, p.task.chat.template)


def tokenize(df: pl.DataFrame, tok, p) -> tuple[pl.DataFrame, dict]:
    """Conversations -> (record_id, input_ids, labels, prompt_length, completion), stats."""
    from tunebuild import chat
    from tunebuild.tokens import length_stats, list_column

    tokenizer_, template = tok
    rows, counts = chat.encode(tokenizer_, template, df["messages"].to_list(), p.tokenize.max_length,
                               p.task.chat.truncation)
    keep = [r[0] for r in rows]
    out = df[keep].select("record_id", input_ids=list_column([r[1] for r in rows]),
                          labels=pl.Series([r[2] for r in rows], dtype=pl.List(pl.Int32)),
                          prompt_length=pl.Series([r[3] for r in rows], dtype=pl.Int32),
                          completion=pl.col("label"))
    trained = int(out["labels"].list.eval((pl.element() != chat.IGNORE).sum()).list.first().sum() or 0)
    stats = length_stats(out["input_ids"].list.len()) | {
        "truncated": counts["truncated"], "dropped": counts["dropped"], "trained_tokens": trained}
    return out, stats


def lengths(rows: pl.DataFrame) -> pl.Series:
    return rows["input_ids"].list.len()


# ---- train --------------------------------------------------------------------------------------------

def check_chat(p) -> None:
    from tunebuild.errors import UserError

    if p.train.chat is None:
        pick = "dpo_lora or train=dpo_full" if p.task.name == "preference" else "sft_lora or train=sft_full"
        raise UserError(f"params.yaml: train.chat: required for task {p.task.name} (grad_accum, packing, ...); "
                        f"pick train={pick}")
    c = p.train.chat
    if c.grad_accum < 1 or c.pack_length < 1 or c.checkpoint_every < 0:
        raise UserError("params.yaml: train.chat.grad_accum and pack_length must be positive, checkpoint_every >= 0")


def build_model(p):
    import torch

    from tunebuild import causal

    model = causal.load_base(p.model)
    torch.manual_seed(p.train.seed)
    return causal.with_lora(model, p.train.lora) if p.train.mode == "lora" else model


def load_rows(path) -> tuple[list[list[int]], list[list[int]]]:
    df = pl.read_parquet(path, columns=["input_ids", "labels"])
    return df["input_ids"].to_list(), df["labels"].to_list()


def trainer(p, inputs: list):
    """Completion-only loss over packed rows, gradient accumulation (tunebuild/causal.py); resumable."""
    from tunebuild import causal, launch
    from tunebuild.errors import UserError
    from tunebuild.tasks import Trainer

    check_chat(p)
    (ids, labels), (val_ids, val_labels) = load_rows(inputs[0]), load_rows(inputs[1])
    if not ids:
        raise UserError(f"{inputs[0]}: no training rows; check data/tokenize/stats.json (dropped) and data/curate")
    model = build_model(p)
    net = launch.wrap(causal.CompletionLoss(model), p.launch.strategy)
    pad_id = model.config.pad_token_id or 0

    def step(micro: list[list[list[int]]]) -> float:
        shares = [launch.share(rows) for rows in micro]
        batches = [causal.make_batch(ids, labels, rows, pad_id) for rows, _ in shares]
        n_targets = max(sum(causal.count_targets(labels, rows) for rows in micro), 1)
        return launch.all_sum(causal.accumulate(net, batches, n_targets, [w for _, w in shares]))

    def validate() -> dict:
        return {"validation/loss": causal.mean_loss(net, val_ids, val_labels, pad_id, p.train.batch_size)}

    return Trainer(model, causal.plan([len(x) for x in ids], p.train), step, validate, lambda: build_model(p),
                   net, p.train.chat.checkpoint_every, tuple(inputs))


# ---- evaluate -----------------------------------------------------------------------------------------

def as_json(text: str):
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


def json_hits(answers: list[str], references: list[str]) -> dict:
    """Per answer, when every reference is a JSON object (a structured-output dataset): is it a JSON object
    (json_valid), is it the reference (exact_match); {} otherwise."""
    import numpy as np

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
    share = lambda hits: round(sum(hits) / len(refs), 6)  # noqa: E731
    per_field = {f: share(isinstance(g, dict) and g.get(f) == r.get(f) for g, r in zip(got, refs))
                 for f in sorted(set().union(*refs))}
    return {k: round(float(v.mean()), 6) for k, v in hits.items()}, per_field


def generate(model, tok, prompts: list[list[int]], max_new_tokens: int, stop: list[int]) -> list[str]:
    """Greedy answers, one prompt at a time (no padding: the same bits whatever the batch)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], device=model.device)
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                               do_sample=False, eos_token_id=stop, pad_token_id=stop[0], use_cache=True)
            out.append(tok.decode(y[0, len(ids):], skip_special_tokens=True).strip())
    return out


def load_tuned(p, model_dir, base=None):
    """The tuned causal LM: a LoRA adapter on `base()` (default the base model), or a full model directory."""
    from tunebuild import causal

    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained((base or (lambda: causal.load_base(p.model)))(), str(model_dir))
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True).to(causal.device())


def few_shot_prompts(p, paths, tok, template: str, record_ids: list[str]) -> tuple[list[list[int]], int]:
    """The prompts of the evaluated records after the first evaluate.few_shot train conversations (by
    record_id), rendered with the chat template and encoded as tokenize encodes (no special tokens added);
    and how many examples that is."""
    from tunebuild import baselines, chat

    shots = (pl.read_parquet(paths.split("train"), columns=["record_id", "messages"]).sort("record_id")
             .head(p.evaluate.few_shot)["messages"].to_list())
    rows = pl.DataFrame({"record_id": record_ids}, schema={"record_id": pl.String}).join(
        pl.read_parquet(paths.split(p.evaluate.split), columns=["record_id", "messages"]),
        on="record_id", how="left", maintain_order="left")
    texts = [chat.render(tok, template, baselines.few_shot(shots, chat.prompt_turns(m)), generation_prompt=True)
             for m in rows["messages"].to_list()]
    return [e.ids for e in tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)], len(shots)


def check_context(model, prompts: list[list[int]], max_new_tokens: int, shots: int) -> None:
    from tunebuild.errors import UserError

    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(map(len, prompts), default=0)
    if limit and longest + max_new_tokens > limit:
        raise UserError(f"params.yaml: evaluate.few_shot: {shots} examples make a prompt of {longest} tokens, which "
                        f"with task.chat.max_new_tokens={max_new_tokens} exceeds the model's {limit} positions; "
                        "lower evaluate.few_shot")


def chat_inputs(p, path, ids_column: str):
    """The split's rows by record_id, the sample to generate for, its prompts, the tokenizer and the tokens
    that end an answer."""
    from transformers import AutoTokenizer

    from tunebuild import chat
    from tunebuild.errors import UserError
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


def confusion(per_field: dict, refs: list[str], answers: list[str]) -> list[tuple[str, str]]:
    """The first JSON field of the references vs the answers (<invalid> when an answer lacks it)."""
    first = next(iter(per_field["tuned"]), None)
    got = [as_json(a) for a in answers]
    return [(str(as_json(r)[first]), str(g[first]) if isinstance(g, dict) and first in g else "<invalid>")
            for r, g in zip(refs, got)] if first else []


def no_label_issues() -> pl.DataFrame:
    from tunebuild.tasks.classify import ISSUES

    return pl.DataFrame(schema=ISSUES)  # no labels to check


def evaluate(p, paths):
    """Loss/perplexity, greedy samples and JSON scores of base and tuned; the base prompted zero-shot (its own
    answers) and few-shot as the cheap alternatives."""
    import math

    import torch

    from tunebuild import baselines, causal, chat
    from tunebuild.tasks import Evaluation

    df, sample, prompts, tok, stop = chat_inputs(p, paths.tokenized(p.evaluate.split), "input_ids")
    ids, labels = df["input_ids"].to_list(), df["labels"].to_list()
    refs = sample["completion"].to_list()
    structured = bool(json_hits(refs, refs))  # the cheap alternatives are scored on JSON answers only
    few, shots = few_shot_prompts(p, paths, tok, chat.pick_template(tok, p.task.chat.template),
                                  sample["record_id"].to_list()) if structured else ([], 0)
    results, per_field, answers = {}, {}, {}
    for name, load in (("base", lambda: causal.load_base(p.model)), ("tuned", lambda: load_tuned(p, paths.model))):
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
    predictions = sample.select("record_id", reference="completion").with_columns(
        **{name: pl.Series(answers.get(name, [None] * sample.height), dtype=pl.String)
           for name in ("base", "tuned", "few_shot")})
    summary = (f"{len(ids)} rows, {sample.height} generated: " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["gain"]))
    return Evaluation(results, per_field, confusion(per_field, refs, answers["tuned"]), predictions,
                      no_label_issues(), summary)


# ---- report -------------------------------------------------------------------------------------------

def describe(p) -> tuple[str, str]:
    return ("chat fine-tuning: conversations whose assistant turns are the training targets.",
            "one conversation (system, user and assistant turns), identified by `record_id` (a hash of its turns "
            "before the final answer)")


def field_table(pc: dict) -> str:
    from tunebuild.markdown import table

    return table(["JSON field", "base", "tuned"], [[f, pc["base"][f], v] for f, v in pc["tuned"].items()])


def card(facts: dict, p) -> dict:
    m, pc = facts["metrics"], facts["per_class"]
    what = f"to {p.data.purpose} in chat" if p.data.purpose else "to answer in chat"
    return {"tag": "text-generation",
            "metrics": [{"type": k, "value": m["tuned"][k]} for k in ("perplexity", "json_valid", "exact_match")
                        if k in m["tuned"]],
            "what": f"{what} (loss on the assistant turns only)",
            "base": "Base = the base model before tuning (the same greedy decoding).",
            "details": field_table(pc),
            "limits": "answers were checked on the test split only (greedy samples: "
                      "`data/evaluate/predictions.parquet`); check the field accuracy above before relying on them."}
