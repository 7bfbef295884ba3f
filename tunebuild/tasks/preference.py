"""task=preference: prompt + chosen + rejected answer -> DPO/IPO on top of a starting point that is
also the reference model (tunebuild/dpo.py).

curate: two conversations (chosen, rejected) that end with the assistant, share their prompt and differ
       in that answer; the rules see the chosen conversation's non-system turns and the rejected answer.
tokenize: both conversations with the chat template, labels on the final answer only; a pair is
       dropped or truncated when either conversation is.
train: pairs side by side in a row, reference scores computed once before the first step.
evaluate: DPO loss, preference and reward accuracy, reward margin; greedy answers of base and tuned.
"""
from __future__ import annotations

import polars as pl

from tunebuild import conversations as conv
from tunebuild.rules import Rule

COLUMNS = {"chosen": (conv.MESSAGES, "empty_content"), "rejected": (conv.MESSAGES, "empty_content")}
MULTI_PROCESS = False  # trains in one process for now


# ---- curate -------------------------------------------------------------------------------------------

def label() -> pl.Expr:
    answers = pl.struct(chosen=conv.final_content("chosen"), rejected=conv.final_content("rejected"))
    return answers.struct.json_encode()


def records(df: pl.DataFrame) -> pl.DataFrame:
    """The JSON pair in `text` (ingest) as `chosen` and `rejected` conversations; the rules see the chosen
    conversation's non-system turns and the rejected answer as `text`, and both answers as `label`
    (another pair for the same prompt: label_conflict)."""
    pair = pl.Struct({"chosen": conv.MESSAGES, "rejected": conv.MESSAGES})
    text = pl.concat_str(conv.turn_text("chosen"), conv.final_content("rejected"), separator="\n")
    return df.with_columns(pl.col("text").str.json_decode(pair).struct.unnest()).with_columns(
        text=text, label=label())


def redact(df: pl.DataFrame, rewrite: dict) -> pl.DataFrame:
    return conv.redact(df, ["chosen", "rejected"], rewrite).with_columns(label=label()) if rewrite else df


def counted_label() -> pl.Expr:
    return pl.lit(None, pl.String).alias("label")


def schema_rules(p) -> list[Rule]:
    same = (conv.final_content("chosen").str.strip_chars()
            == conv.final_content("rejected").str.strip_chars())
    return conv.turn_rules("chosen,rejected", p.curate.max_chars) + [
        Rule("prompt_mismatch", "rejected",
             lambda _: (conv.prompt_key("chosen") == conv.prompt_key("rejected")).fill_null(False),
             pl.lit("the chosen and the rejected answer follow different prompts (the turns before their "
                    "final answers differ)")),
        Rule("same_answers", "rejected", lambda _: ~same.fill_null(False),
             pl.lit("the chosen and the rejected answer are the same")),
    ]


# ---- tokenize -----------------------------------------------------------------------------------------

def tokenizer(p):
    from tunebuild.tasks import sft

    return sft.tokenizer(p)


def tokenize(df: pl.DataFrame, tok, p) -> tuple[pl.DataFrame, dict]:
    """Pairs -> chosen/rejected ids and final-answer labels, stats (a pair is truncated or dropped when
    either of its conversations is)."""
    from tunebuild import chat
    from tunebuild.tokens import length_stats, list_column

    tokenizer_, template = tok
    max_length, policy = p.tokenize.max_length, p.task.chat.truncation
    sides = {name: {r[0]: r for r in chat.encode(tokenizer_, template, df[name].to_list(), max_length, policy)[0]}
             for name in ("chosen", "rejected")}
    keep = [i for i in sides["chosen"] if i in sides["rejected"]]
    columns = {}
    for name, rows in sides.items():
        picked = [rows[i] for i in keep]
        columns[f"{name}_ids"] = list_column([r[1] for r in picked])
        columns[f"{name}_labels"] = pl.Series([chat.final_answer_labels(r[2], r[3]) for r in picked],
                                              dtype=pl.List(pl.Int32))
    answer = lambda name: pl.col(name).list.last().struct.field("content")  # noqa: E731
    out = df[keep].select("record_id", **columns, chosen=answer("chosen"), rejected=answer("rejected"),
                          prompt_length=pl.Series([sides["chosen"][i][3] for i in keep], dtype=pl.Int32))
    trained = sum(int(out[c].list.eval((pl.element() != chat.IGNORE).sum()).list.first().sum() or 0)
                  for c in ("chosen_labels", "rejected_labels"))
    truncated = sum(1 for i in keep if "truncated" in (sides["chosen"][i][4], sides["rejected"][i][4]))
    stats = length_stats(lengths(out)) | {
        "rows": out.height, "truncated": truncated, "dropped": df.height - out.height, "trained_tokens": trained}
    return out, stats


def lengths(rows: pl.DataFrame) -> pl.Series:
    """Token counts of both answers' sequences of each pair."""
    return pl.concat([rows["chosen_ids"].list.len(), rows["rejected_ids"].list.len()])


# ---- train --------------------------------------------------------------------------------------------

def start_model(p):
    """The starting point (also the reference), seeded, LoRA-wrapped with train.mode=lora."""
    import torch

    from tunebuild import causal, dpo

    model = dpo.load_start(p.model, p.train.preference.init)
    torch.manual_seed(p.train.seed)
    return causal.with_lora(model, p.train.lora) if p.train.mode == "lora" else model


def trainer(p, inputs: list):
    """DPO over batches of pairs: reference scores once, before the first step (tunebuild/dpo.py)."""
    from tunebuild import causal, dpo
    from tunebuild.errors import UserError
    from tunebuild.tasks import Trainer, sft

    sft.check_chat(p)
    dpo.check(p.train.preference)
    train, val = dpo.load_pairs(inputs[0]), dpo.load_pairs(inputs[1])
    if not train[0]:
        raise UserError(f"{inputs[0]}: no training pairs; check data/tokenize/stats.json (dropped) and data/curate")
    model = start_model(p)
    pad_id = model.config.pad_token_id or 0
    pref, size = p.train.preference, p.train.batch_size
    beta, loss, mean = pref.beta, pref.loss, pref.loss == "ipo"
    ref_train = dpo.reference_logps(model, train, pad_id, size, mean)
    ref_val = dpo.reference_logps(model, val, pad_id, size, mean)

    def step(micro: list[list[list[int]]]) -> float:
        n_pairs = sum(len(row) for rows in micro for row in rows)
        total = 0.0
        for rows in micro:
            chosen, rejected, pairs = dpo.answer_logps(model, train, rows, pad_id, mean)
            losses, _, _ = dpo.dpo_loss(chosen, rejected, ref_train[0][pairs], ref_train[1][pairs], beta, loss)
            (losses.sum() / n_pairs).backward()
            total += losses.sum().item()
        return total / n_pairs

    def validate() -> dict:
        policy = dpo.all_logps(model, val, pad_id, size, mean)
        return {f"validation/{k}": v for k, v in dpo.scores(policy, ref_val, beta, loss).items()}

    steps = causal.plan(dpo.pair_lengths(train), p.train)
    return Trainer(model, steps, step, validate, lambda: start_model(p), None,
                   p.train.chat.checkpoint_every, tuple(inputs + dpo.init_files(pref.init)))


# ---- evaluate -----------------------------------------------------------------------------------------

def evaluate(p, paths):
    """DPO scores of the starting point (base) and the tuned model against the starting point, and greedy
    samples of both (tunebuild/dpo.py)."""
    import torch

    from tunebuild import dpo
    from tunebuild.tasks import Evaluation, sft

    dpo.check(p.train.preference)
    pref = p.train.preference
    df, sample, prompts, tok, stop = sft.chat_inputs(p, paths.tokenized(p.evaluate.split), "chosen_ids")
    seqs, mean = dpo.interleave(df), pref.loss == "ipo"
    refs = sample["chosen"].to_list()
    results, per_field, answers, logps = {}, {}, {}, {}
    start = lambda: dpo.load_start(p.model, pref.init)  # noqa: E731
    for name, load in (("base", start), ("tuned", lambda: sft.load_tuned(p, paths.model, start))):
        torch.manual_seed(p.evaluate.seed)
        model = None  # one model in memory at a time
        model = load()
        logps[name] = dpo.all_logps(model, seqs, model.config.pad_token_id or 0, p.evaluate.batch_size, mean)
        answers[name] = sft.generate(model, tok, prompts, p.task.chat.max_new_tokens, stop)
        found, per_field[name] = sft.json_scores(answers[name], refs)
        results[name] = dpo.scores(logps[name], logps["base"], pref.beta, pref.loss) | found
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    _, chosen, rejected = dpo.dpo_loss(*logps["tuned"], *logps["base"], pref.beta, pref.loss)
    margin = (chosen - rejected)[:sample.height].cpu().numpy().round(6)
    predictions = sample.select("record_id", "chosen", "rejected").with_columns(
        base=pl.Series(answers["base"], dtype=pl.String), tuned=pl.Series(answers["tuned"], dtype=pl.String),
        margin=pl.Series(margin, dtype=pl.Float64))
    summary = (f"{df.height} pairs, {sample.height} generated: " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["tuned"]))
    return Evaluation(results, per_field, sft.confusion(per_field, refs, answers["tuned"]), predictions,
                      sft.no_label_issues(), summary)


# ---- report -------------------------------------------------------------------------------------------

def describe(p) -> tuple[str, str]:
    return ("preference tuning (DPO): prompts with a chosen and a rejected answer.",
            "one pair: a prompt (a conversation) with a chosen and a rejected answer, identified by `record_id` "
            "(a hash of the prompt's turns; one pair per prompt)")


def card(facts: dict, p) -> dict:
    from tunebuild.tasks import sft

    m, pc = facts["metrics"], facts["per_class"]
    pref = p.train.preference
    start = f", starting from `{pref.init}` (an sft result on it)" if pref.init else ""
    keys = ("preference_accuracy", "reward_margin", "json_valid", "exact_match")
    return {"tag": "text-generation",
            "metrics": [{"type": k, "value": m["tuned"][k]} for k in keys if k in m["tuned"]],
            "what": f"by Direct Preference Optimization ({pref.loss} loss, beta {pref.beta}){start}, to prefer "
                    "the chosen answers of preference pairs over the rejected ones",
            "base": "Base = the starting point, which is also the reference model (its reward margin is 0 by "
                    "definition). Preference accuracy: how often a model gives the chosen answer a higher "
                    "log-probability than the rejected one; reward margin: beta times the log-ratio to the "
                    "reference, chosen minus rejected.",
            "details": sft.field_table(pc) if pc.get("tuned") else "",
            "limits": "preferences were checked on the test split's pairs only (greedy samples side by side: "
                      "`data/evaluate/predictions.parquet`); a higher preference accuracy does not by itself make "
                      "the greedy answers right."}
