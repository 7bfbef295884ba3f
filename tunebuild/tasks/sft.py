"""task=sft: chat examples -> a causal LM trained on the assistant turns (completion-only loss).

curate: `messages` = [{role, content}], roles in order, ending with the assistant; the rules see the
       non-system turns as text, and the final answer is the label (two answers to one prompt: a
       label_conflict).
tokenize: the chat template renders each conversation; labels -100 but on assistant turns
       (tunebuild/chat.py); task.chat.truncation drops an example or cuts its prompt's start.
train: packed rows without attention across examples, gradient accumulation, LoRA or full
       (tunebuild/causal.py), resumable checkpoints.
evaluate: loss and perplexity; greedy answers of base and tuned (batched, left-padded), and when the answers
       are JSON objects json_valid / exact_match against the base prompted zero-shot, few-shot with the
       first k train conversations and few-shot with the k nearest ones (tunebuild/retrieval.py); base and
       tuned loss on general text (evaluate.general_text: what tuning cost elsewhere).
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
    from tunebuild.model import load_tokenizer

    if p.task.chat is None:
        raise UserError(f"params.yaml: task.chat: required for task {p.task.name} (template, truncation, ...); "
                        f"use task={p.task.name} (conf/task/{p.task.name}.yaml)")
    if p.task.chat.truncation not in ("drop", "left"):
        raise UserError(f"params.yaml: task.chat.truncation: '{p.task.chat.truncation}' is not one of drop, left")
    tok = load_tokenizer(p.model.path)
    if tok.chat_template is None and p.task.chat.template not in chat.TEMPLATES:
        raise UserError(f"params.yaml: task.chat.template: '{p.task.chat.template}' is not one of "
                        f"{', '.join(chat.TEMPLATES)} (the tokenizer has no template of its own)")
    return tok, chat.pick_template(tok, p.task.chat.template)


def tokenize(df: pl.DataFrame, tok, p) -> tuple[pl.DataFrame, dict]:
    """Conversations -> (record_id, input_ids, labels, prompt_length, completion), stats."""
    from tunebuild import chat
    from tunebuild.tokens import length_stats, list_column

    tokenizer_, template = tok
    rows, counts = encode(p, tokenizer_, template, df["messages"].to_list(), df["record_id"].to_list())
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


def encode(p, tok, template: str, conversations: list[list[dict]], record_ids: list[str]):
    """chat.encode, with a template that does not render prefixes as prefixes as one line naming the model."""
    from tunebuild import chat
    from tunebuild.errors import UserError

    try:
        return chat.encode(tok, template, conversations, p.tokenize.max_length, p.task.chat.truncation)
    except chat.TemplateError:
        bad = next(r for r, m in zip(record_ids, conversations) if not template_ok(tok, template, m))
        raise UserError(f"params.yaml: model.path: the chat template of {p.model.name} ({p.model.path}) does not render "
                        f"a conversation's beginning as the beginning of the whole conversation (record {bad}), so its "
                        "assistant turns cannot be told apart for the loss; use a model whose template does") from None


def template_ok(tok, template: str, messages: list[dict]) -> bool:
    from tunebuild import chat

    try:
        chat.assistant_spans(tok, template, messages)
        return True
    except chat.TemplateError:
        return False


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
    from tunebuild import causal

    causal.check_quantize(p.train.lora if p.train.mode == "lora" else None)
    if quantize(p) and c.merge:
        raise UserError("params.yaml: train.chat.merge: a LoRA adapter on a 4-bit base (train.lora.quantize) is not "
                        "merged here (the merge would round the base); set merge: false and merge onto the float base")


def quantize(p) -> str | None:
    """The 4-bit format of the base (QLoRA), or None."""
    return p.train.lora.quantize if p.train.mode == "lora" and p.train.lora is not None else None


def build_model(p):
    import torch

    from tunebuild import causal

    model = causal.load_base(p.model, full_training=p.train.mode == "full", quantize=quantize(p))
    torch.manual_seed(p.train.seed)
    return causal.prepare(model, p.train)


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
    scale = causal.loss_scale(model)

    def step(micro: list[list[list[int]]]) -> float:
        shares = [launch.share(rows) for rows in micro]
        batches = [causal.make_batch(ids, labels, rows, pad_id) for rows, _ in shares]
        n_targets = max(sum(causal.count_targets(labels, rows) for rows in micro), 1)
        return launch.all_sum(causal.accumulate(net, batches, n_targets, [w for _, w in shares], scale))

    def validate() -> dict:
        return {"validation/loss": causal.mean_loss(net, val_ids, val_labels, pad_id, p.train.batch_size,
                                                    "train: validation loss")}

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


def generate(model, tok, prompts: list[list[int]], max_new_tokens: int, stop: list[int], batch_size: int,
             what: str = "") -> list[str]:
    """Greedy answers, `batch_size` prompts at a time (prompts of similar length together, left-padded, with an
    attention mask), each cut at its first stop token. On CPU in float32 they equal one-at-a-time answers
    (tested); a batch is not bit-identical to a single prompt (other matrix shapes), so a next-token near-tie
    could flip. Progress on stderr when `what` names the job."""
    import torch

    from tunebuild import causal

    model.eval()
    stop = sorted(set(stop) | set(eos_ids(model)))
    pad = tok.pad_token_id if tok.pad_token_id is not None else stop[0]
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    out: list[str] = [""] * len(prompts)
    clock = causal.Progress(what, len(prompts))
    dev = next(model.parameters()).device
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            width = max(len(prompts[i]) for i in rows)
            x = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, i in enumerate(rows):
                x[b, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[b, width - len(prompts[i]):] = 1
            y = model.generate(input_ids=x.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                               do_sample=False, eos_token_id=stop, pad_token_id=pad, use_cache=True)
            for b, i in enumerate(rows):
                answer = y[b, width:].tolist()
                cut = next((t for t, token in enumerate(answer) if token in stop), len(answer))
                out[i] = tok.decode(answer[:cut], skip_special_tokens=True).strip()
            clock.tick(len(rows))
    return out


def eos_ids(model) -> list[int]:
    """The end-of-sequence ids of the model's generation config (an id or a list)."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if config is not None else None
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def stop_tokens(tok, template: str) -> list[int]:
    """Tokens that end an answer: the tokenizer's end of sequence and what the template writes after an assistant
    turn (the model's generation config adds its own in `generate`)."""
    from tunebuild import chat

    ids = ([tok.eos_token_id] if tok.eos_token_id is not None else []) + chat.end_of_turn(tok, template)
    return sorted(set(ids))


def load_tuned(p, model_dir, base=None):
    """The tuned causal LM: a LoRA adapter on `base()` (default the base model; the adapter goes into that very
    model), or a full model directory (in model.dtype)."""
    from tunebuild import causal
    from tunebuild.model import check_attention, torch_dtype

    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained((base or (lambda: causal.load_base(p.model)))(), str(model_dir))
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(model_dir), use_safetensors=True, dtype=torch_dtype(p.model.dtype),
        attn_implementation=check_attention(p.model.attn_implementation))
    setattr(model, causal.AUTOCAST, causal.compute_dtype(p.model))
    return model.to(causal.device())


def split_messages(paths, split: str) -> pl.DataFrame:
    return pl.read_parquet(paths.split(split), columns=["record_id", "messages"])


def few_shot_prompts(p, tok, template: str, shots: list[list[list[dict]]], prompts: list[list[dict]]) -> list[list[int]]:
    """Each prompt after its own example conversations, rendered with the chat template and encoded as tokenize
    encodes (no special tokens added)."""
    from tunebuild import baselines, chat

    texts = [chat.render(tok, template, baselines.few_shot(examples, chat.prompt_turns(m)), generation_prompt=True)
             for examples, m in zip(shots, prompts)]
    return [e.ids for e in tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


def prompting_baselines(p, paths, tok, template: str, record_ids: list[str]) -> dict[str, tuple[list[list[int]], int]]:
    """The cheap prompting alternatives' prompts for the evaluated records: `few_shot` (the first
    evaluate.few_shot train conversations by record_id) and, with evaluate.retrieval_model, `nearest_few_shot`
    (the evaluate.few_shot train conversations nearest to each prompt); each with its number of examples."""
    from tunebuild import retrieval

    train = split_messages(paths, "train").sort("record_id")
    rows = pl.DataFrame({"record_id": record_ids}, schema={"record_id": pl.String}).join(
        split_messages(paths, p.evaluate.split), on="record_id", how="left", maintain_order="left")
    prompts, pool = rows["messages"].to_list(), train["messages"].to_list()
    first = pool[:p.evaluate.few_shot]
    out = {"few_shot": (few_shot_prompts(p, tok, template, [first] * len(prompts), prompts), len(first))}
    if p.evaluate.retrieval_model is not None and p.evaluate.few_shot > 0:
        embed = lambda texts, what: retrieval.embed(p.evaluate.retrieval_model, texts, p.evaluate.batch_size,  # noqa: E731
                                                    f"evaluate: embedding {what} prompts")
        picked = retrieval.nearest(embed([retrieval.query_text(m) for m in pool], "train"),
                                   embed([retrieval.query_text(m) for m in prompts], p.evaluate.split),
                                   p.evaluate.few_shot)
        shots = [[pool[j] for j in js] for js in picked]
        out["nearest_few_shot"] = (few_shot_prompts(p, tok, template, shots, prompts), min(p.evaluate.few_shot, len(pool)))
    return out


def check_context(model, prompts: list[list[int]], max_new_tokens: int, shots: int) -> None:
    from tunebuild.errors import UserError

    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(map(len, prompts), default=0)
    if limit and longest + max_new_tokens > limit:
        raise UserError(f"params.yaml: evaluate.few_shot: {shots} examples make a prompt of {longest} tokens, which "
                        f"with task.chat.max_new_tokens={max_new_tokens} exceeds the model's {limit} positions; "
                        "lower evaluate.few_shot")


def chat_inputs(p, path, ids_column: str):
    """The split's rows by record_id, the sample to generate for, its prompts, the tokenizer, its chat template and
    the tokens that end an answer."""
    from tunebuild import chat
    from tunebuild.errors import UserError
    from tunebuild.model import load_tokenizer

    if p.task.chat is None:
        raise UserError(f"params.yaml: task.chat: required for task {p.task.name}; use task={p.task.name}")
    if p.evaluate.generation_batch < 1:
        raise UserError("params.yaml: evaluate.generation_batch: must be at least 1")
    df = pl.read_parquet(path).sort("record_id")
    if not df.height:
        raise UserError(f"{path}: no rows to evaluate; check data/tokenize/stats.json")
    sample = df if p.task.chat.samples < 0 else df.head(p.task.chat.samples)
    prompts = [x[:n] for x, n in zip(sample[ids_column].to_list(), sample["prompt_length"].to_list())]
    tok = load_tokenizer(p.model.path)
    template = chat.pick_template(tok, p.task.chat.template)
    return df, sample, prompts, tok, template, stop_tokens(tok, template)


# ---- general text: what tuning costs elsewhere ---------------------------------------------------------

GENERAL_MAX_TOKENS = 256


def general_rows(p, tok) -> tuple[list[list[int]], list[list[int]]] | None:
    """evaluate.general_text's passages as (ids, labels) for a plain language-modelling loss (every token after
    the first is a target), cut at GENERAL_MAX_TOKENS tokens; None when not set."""
    import orjson

    from tunebuild.errors import UserError

    if p.evaluate.general_text is None:
        return None
    try:
        texts = [orjson.loads(line)["text"] for line in open(p.evaluate.general_text, "rb") if line.strip()]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"params.yaml: evaluate.general_text: {p.evaluate.general_text}: not a JSONL file of "
                        f"{{\"text\": ...}} rows ({e})") from None
    ids = [e.ids[:GENERAL_MAX_TOKENS] for e in tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]
    return ids, [list(x) for x in ids]


def general_losses(model, rows, pad_id: int, batch_size: int, what: str):
    """Per passage: summed loss and token count (None when general text is not measured)."""
    from tunebuild import causal

    return None if rows is None else causal.example_losses(model, rows[0], rows[1], pad_id, batch_size, what)


def general_change(base, tuned, count: int, seed: int, source: str) -> dict:
    """Loss per token on the general text, base and tuned, and the change with a paired bootstrap interval over
    passages (the same resamples for both)."""
    import math

    import numpy as np

    from tunebuild import baselines

    b_sum, n = np.array(base[0]), np.array(base[1], dtype=np.float64)
    t_sum = np.array(tuned[0])
    per_token = lambda sums: (lambda idx: sums[idx].sum(-1) / np.maximum(n[idx].sum(-1), 1))  # noqa: E731
    idx = baselines.resamples(len(n), count, seed)
    change = baselines.with_intervals({"loss_change": baselines.difference(per_token(t_sum), per_token(b_sum))}, idx)
    b, t = float(b_sum.sum() / max(n.sum(), 1)), float(t_sum.sum() / max(n.sum(), 1))
    return {"source": source, "passages": len(n), "tokens": int(n.sum()), "base_loss": round(b, 6),
            "tuned_loss": round(t, 6)} | change | {"perplexity_change_pct": round(100 * (math.exp(t - b) - 1), 4)}


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
    answers), few-shot with the first train conversations and with the nearest ones as the cheap alternatives;
    base and tuned loss on general text. The base model loads once: the tuned adapter goes on top of it after the
    base's turn."""
    import math

    import torch

    from tunebuild import baselines, causal
    from tunebuild.tasks import Evaluation

    df, sample, prompts, tok, template, stop = chat_inputs(p, paths.tokenized(p.evaluate.split), "input_ids")
    ids, labels = df["input_ids"].to_list(), df["labels"].to_list()
    refs = sample["completion"].to_list()
    structured = bool(json_hits(refs, refs))  # the cheap alternatives are scored on JSON answers only
    alternatives = prompting_baselines(p, paths, tok, template, sample["record_id"].to_list()) if structured else {}
    general = general_rows(p, tok)
    results, per_field, answers, general_scores = {}, {}, {}, {}
    base = None
    batch, gen_batch, new = p.evaluate.batch_size, p.evaluate.generation_batch, p.task.chat.max_new_tokens
    for name, load in (("base", lambda: causal.load_base(p.model)),
                       ("tuned", lambda: load_tuned(p, paths.model, lambda: base))):
        torch.manual_seed(p.evaluate.seed)
        model = load()
        base = model if name == "base" else None
        pad_id = model.config.pad_token_id or 0
        loss = causal.mean_loss(model, ids, labels, pad_id, batch, f"evaluate: {name} loss, rows")
        general_scores[name] = general_losses(model, general, pad_id, batch, f"evaluate: {name} loss on general text, passages")
        answers[name] = generate(model, tok, prompts, new, stop, gen_batch, f"evaluate: {name} answers")
        if name == "base":
            for alt, (alt_prompts, shots) in alternatives.items():
                check_context(model, alt_prompts, new, shots)
                answers[alt] = generate(model, tok, alt_prompts, new, stop, gen_batch, f"evaluate: {alt} answers")
        scores_, per_field[name] = json_scores(answers[name], refs)
        results[name] = {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 6)} | scores_
        if general is not None:
            g = general_scores[name]
            results[name]["general_loss"] = round(sum(g[0]) / max(sum(g[1]), 1), 6)
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    results["generated"] = sample.height
    if general is not None:
        results["general"] = general_change(general_scores["base"], general_scores["tuned"], p.evaluate.bootstrap,
                                            p.evaluate.seed, p.evaluate.general_text)
    if structured:
        names = ["zero_shot", *alternatives]
        hits = {name: json_hits(answers["base" if name == "zero_shot" else name], refs) for name in names}
        hits["tuned"] = json_hits(answers["tuned"], refs)
        scored, results["gain_over_best_baseline"] = baselines.compare(
            {name: {m: baselines.mean_of(h) for m, h in v.items()} for name, v in hits.items()},
            names, "exact_match", len(refs), p.evaluate.bootstrap, p.evaluate.seed)
        results["tuned"] |= scored["tuned"]
        results["base"] |= scored["zero_shot"]
        results["baselines"] = {"zero_shot": scored["zero_shot"]} | {
            alt: scored[alt] | {"shots": shots} for alt, (_, shots) in alternatives.items()}
    predictions = sample.select("record_id", reference="completion").with_columns(
        **{name: pl.Series(answers.get(name, [None] * sample.height), dtype=pl.String)
           for name in ("base", "tuned", "few_shot", "nearest_few_shot")})
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


def scored(scores: dict, metric: str = "exact_match") -> str:
    """`0.620 [0.520, 0.710]`: a metric with its 95% interval."""
    return f"{scores[metric]:.3f} [{scores[f'{metric}_ci_lo']:.3f}, {scores[f'{metric}_ci_hi']:.3f}]"


PROMPTED = {"few_shot": "few-shot with the first {k} train conversations",
            "nearest_few_shot": "few-shot with the {k} train conversations nearest to each prompt (by embedding)"}


def lead(m: dict) -> str:
    """The evaluation's first sentence: the tuned model against the same base model prompted zero-shot and
    few-shot, exact match with 95% intervals ("" when the answers are not JSON)."""
    if "baselines" not in m or "exact_match_ci_lo" not in m["tuned"]:
        return ""
    alts = [f"{PROMPTED[n].format(k=v['shots'])} {scored(v)}" for n, v in m["baselines"].items() if n in PROMPTED]
    n = m.get("generated")
    where = f" on {n} test conversations" if n else ""
    return (f"Exact match of greedy JSON answers{where}: tuned {scored(m['tuned'])}; the same base model prompted "
            f"zero-shot {scored(m['baselines']['zero_shot'])}" + "".join(f", {a}" for a in alts) + ".")


def general_sentence(m: dict, base: str = "base") -> str:
    """How much general ability moved: the loss on general text, base vs tuned, with the paired interval."""
    g = m.get("general")
    if not g:
        return ""
    change = f"{g['loss_change']:+.3f} [{g['loss_change_ci_lo']:+.3f}, {g['loss_change_ci_hi']:+.3f}]"
    if g["loss_change_ci_lo"] > 0:
        verdict = "the tuning cost some general language ability"
    elif g["loss_change_ci_hi"] < 0:
        verdict = "the tuned model reads general text better than the base"
    else:
        verdict = "no change this text can show"
    return (f"General ability: on {g['passages']} passages of general text never seen in training (`{g['source']}`, "
            f"{g['tokens']:,} tokens) the loss per token went from {g['base_loss']:.3f} ({base}) to "
            f"{g['tuned_loss']:.3f} (tuned), {change} (perplexity {g['perplexity_change_pct']:+.1f}%): {verdict}.")


def card(facts: dict, p) -> dict:
    m, pc = facts["metrics"], facts["per_class"]
    what = f"to {p.data.purpose} in chat" if p.data.purpose else "to answer in chat"
    general = general_sentence(m)
    return {"tag": "text-generation",
            "metrics": [{"type": k, "value": m["tuned"][k]} for k in ("perplexity", "json_valid", "exact_match")
                        if k in m["tuned"]],
            "what": f"{what} (loss on the assistant turns only)",
            "lead": lead(m),
            "base": "Base = the base model before tuning (the same greedy decoding).",
            "details": (f"{general}\n\n" if general else "") + field_table(pc),
            "limits": "answers were checked on the test split only (greedy samples: "
                      "`data/evaluate/predictions.parquet`); check the field accuracy above before relying on them."}
