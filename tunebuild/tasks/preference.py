"""task=preference: prompt + chosen + rejected answer -> DPO/IPO on top of a starting point that is
also the reference model (tunebuild/dpo.py).

curate: two conversations (chosen, rejected) that end with the assistant, share their prompt and differ
       in that answer; the rules see the chosen conversation's non-system turns and the rejected answer.
tokenize: both conversations with the chat template, labels on the final answer only; a pair is
       dropped or truncated when either conversation is.
train: pairs side by side in a row, reference scores computed once before the first step.
evaluate: DPO loss, preference and reward accuracy, reward margin; greedy answers of base and tuned (batched);
       intervals and the tuned model's gain over the starting point; base and tuned loss on general text.
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

    from tunebuild.tasks.sft import quantize

    model = dpo.load_start(p.model, p.train.preference.init, full_training=p.train.mode == "full", quantize=quantize(p))
    torch.manual_seed(p.train.seed)
    return causal.prepare(model, p.train)


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
    steps = causal.plan(dpo.pair_lengths(train), p.train)
    used = sorted({i for _, micro in steps for rows in micro for row in rows for i in row})  # max_steps: a subset
    ref_train = dpo.reference_logps(model, train, pad_id, size, mean, "train: reference scores, train pairs", used)
    ref_val = dpo.reference_logps(model, val, pad_id, size, mean, "train: reference scores, validation pairs")
    scale = causal.loss_scale(model)

    def step(micro: list[list[list[int]]]) -> float:
        n_pairs = sum(len(row) for rows in micro for row in rows)
        total, factor = 0.0, scale.value if scale is not None else 1.0
        for rows in micro:
            chosen, rejected, pairs = dpo.answer_logps(model, train, rows, pad_id, mean)
            losses, _, _ = dpo.dpo_loss(chosen, rejected, ref_train[0][pairs], ref_train[1][pairs], beta, loss)
            (losses.sum() * factor / n_pairs).backward()
            total += losses.sum().item()
        if scale is not None:
            scale.unscale(model)
        return total / n_pairs

    def validate() -> dict:
        policy = dpo.all_logps(model, val, pad_id, size, mean, "train: validation scores, pairs")
        return {f"validation/{k}": v for k, v in dpo.scores(policy, ref_val, beta, loss).items()}

    return Trainer(model, steps, step, validate, lambda: start_model(p), None,
                   p.train.chat.checkpoint_every, tuple(inputs + dpo.init_files(pref.init)))


# ---- evaluate -----------------------------------------------------------------------------------------

def evaluate(p, paths):
    """DPO scores of the starting point (base) and the tuned model against the starting point, greedy samples of
    both, intervals and the tuned model's paired gain over the starting point, and the loss on general text
    (tunebuild/dpo.py). The starting point loads once; a LoRA result goes on top of it after its turn."""
    import numpy as np
    import torch

    from tunebuild import dpo
    from tunebuild.tasks import Evaluation, sft

    dpo.check(p.train.preference)
    pref = p.train.preference
    df, sample, prompts, tok, _, stop = sft.chat_inputs(p, paths.tokenized(p.evaluate.split), "chosen_ids")
    seqs, mean = dpo.interleave(df), pref.loss == "ipo"
    refs = sample["chosen"].to_list()
    general = sft.general_rows(p, tok)
    results, per_field, answers, logps, general_scores, hits = {}, {}, {}, {}, {}, {}
    start = None
    batch = p.evaluate.batch_size
    for name, load in (("base", lambda: dpo.load_start(p.model, pref.init)),
                       ("tuned", lambda: sft.load_tuned(p, paths.model, lambda: start))):
        torch.manual_seed(p.evaluate.seed)
        model = load()
        start = model if name == "base" else None
        pad_id = model.config.pad_token_id or 0
        logps[name] = dpo.all_logps(model, seqs, pad_id, batch, mean, f"evaluate: {name} scores, pairs")
        general_scores[name] = sft.general_losses(model, general, pad_id, batch, f"evaluate: {name} loss on general text, passages")
        answers[name] = sft.generate(model, tok, prompts, p.task.chat.max_new_tokens, stop, p.evaluate.generation_batch,
                                     f"evaluate: {name} answers")
        found, per_field[name] = sft.json_scores(answers[name], refs)
        results[name] = dpo.scores(logps[name], logps["base"], pref.beta, pref.loss) | found
        hits[name] = {"preference_accuracy": (logps[name][0] > logps[name][1]).cpu().numpy().astype(np.float64)}
        hits[name] |= {k: v for k, v in sft.json_hits(answers[name], refs).items()}
        if general is not None:
            g = general_scores[name]
            results[name]["general_loss"] = round(sum(g[0]) / max(sum(g[1]), 1), 6)
    results["gain"] = {k: round(results["tuned"][k] - results["base"][k], 6) for k in results["tuned"]}
    results["generated"] = sample.height
    if general is not None:
        results["general"] = sft.general_change(general_scores["base"], general_scores["tuned"], p.evaluate.bootstrap,
                                                p.evaluate.seed, p.evaluate.general_text)
    results |= intervals(hits, p.evaluate.bootstrap, p.evaluate.seed)
    for name in ("base", "tuned"):
        results[name] |= results.pop(f"{name}_intervals")
    _, chosen, rejected = dpo.dpo_loss(*logps["tuned"], *logps["base"], pref.beta, pref.loss)
    margin = (chosen - rejected)[:sample.height].cpu().numpy().round(6)
    predictions = sample.select("record_id", "chosen", "rejected").with_columns(
        base=pl.Series(answers["base"], dtype=pl.String), tuned=pl.Series(answers["tuned"], dtype=pl.String),
        margin=pl.Series(margin, dtype=pl.Float64))
    summary = (f"{df.height} pairs, {sample.height} generated: " + ", ".join(
        f"{k} {results['base'][k]:.3f} -> {results['tuned'][k]:.3f}" for k in results["gain"]))
    return Evaluation(results, per_field, sft.confusion(per_field, refs, answers["tuned"]), predictions,
                      sft.no_label_issues(), summary)


def intervals(hits: dict[str, dict], count: int, seed: int) -> dict:
    """Bootstrap intervals of base and tuned per metric (each over its own rows: preference accuracy over every
    test pair, the JSON scores over the generated sample), and the tuned model's paired gain over the starting
    point (`gain_over_start`)."""
    from tunebuild import baselines

    out = {"base_intervals": {}, "tuned_intervals": {}, "gain_over_start": {}}
    for metric in hits["tuned"]:
        n = len(hits["tuned"][metric])
        systems = {name: {metric: baselines.mean_of(hits[name][metric])} for name in ("base", "tuned")}
        scored, gain = baselines.compare(systems, ["base"], metric, n, count, seed)
        out["base_intervals"] |= {k: v for k, v in scored["base"].items() if k != metric}
        out["tuned_intervals"] |= {k: v for k, v in scored["tuned"].items() if k != metric}
        out["gain_over_start"] |= {k: v for k, v in gain.items() if k not in ("baseline", "metric")}
    return out


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
    general = sft.general_sentence(m, "the starting point")
    return {"tag": "text-generation",
            "lead": lead(m),
            "metrics": [{"type": k, "value": m["tuned"][k]} for k in keys if k in m["tuned"]],
            "what": f"by Direct Preference Optimization ({pref.loss} loss, beta {pref.beta}){start}, to prefer "
                    "the chosen answers of preference pairs over the rejected ones",
            "base": "Base = the starting point, which is also the reference model (its reward margin is 0 by "
                    "definition). Preference accuracy: how often a model gives the chosen answer a higher "
                    "log-probability than the rejected one; reward margin: beta times the log-ratio to the "
                    "reference, chosen minus rejected.",
            "details": (f"{general}\n\n" if general else "") + (sft.field_table(pc) if pc.get("tuned") else ""),
            "limits": "preferences were checked on the test split's pairs only (greedy samples side by side: "
                      "`data/evaluate/predictions.parquet`); a higher preference accuracy does not by itself make "
                      "the greedy answers right."}


def lead(m: dict) -> str:
    """The evaluation's first sentence: the tuned model against its starting point, with 95% intervals and the
    paired gain ("" without intervals)."""
    from tunebuild.tasks.sft import scored

    g = m.get("gain_over_start", {})
    if "preference_accuracy_ci_lo" not in m["tuned"]:
        return ""
    gain = lambda k: f"{100 * g[k]:+.1f} points [{100 * g[f'{k}_ci_lo']:+.1f}, {100 * g[f'{k}_ci_hi']:+.1f}]"  # noqa: E731
    text = (f"Preference accuracy on the test pairs: tuned {scored(m['tuned'], 'preference_accuracy')} against "
            f"{scored(m['base'], 'preference_accuracy')} for the starting point, {gain('preference_accuracy')}")
    if "exact_match_ci_lo" in m["tuned"]:
        n = m.get("generated")
        text += (f"; exact match of greedy JSON answers with the chosen ones{f' on {n} test prompts' if n else ''}: "
                 f"tuned {scored(m['tuned'])}, starting point {scored(m['base'])}, {gain('exact_match')}")
    return text + "."
