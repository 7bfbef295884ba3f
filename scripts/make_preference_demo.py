r"""Generate the preference (task=preference) demo: ticket triage as JSON, a right answer and a wrong one.

Run from the repo root:  python scripts/make_preference_demo.py
Deterministic: one random.Random(SEED), no clock; every run writes the same bytes. The tickets and the
triage come from scripts/make_chat_demo.py (the sft demo's job), drawn with another seed; the model is
the sft demo's models/tiny-chat.

Each pair: a ticket, the chosen answer (the right JSON triage) and a rejected one that is plausible but
wrong: one field with another valid value, a field missing, malformed JSON, the JSON wrapped in chatter,
or prose instead of JSON. Three sources, one per layout:

  data/raw_pref/pairs/prefs.jsonl           prompt, chosen, rejected as strings                 CC-BY-4.0
  data/raw_pref/conversations/prefs.jsonl   prompt as messages (system + user), answers as one-message
                                            lists; 1 in 8 with no prompt and whole conversations
                                            as answers (the implicit-prompt layout)                CC-BY-4.0
  data/raw_pref/review/ratings.csv          prompt,preferred,dispreferred (a reviewers' export)    CC0-1.0

Defects planted on purpose: 1 malformed JSONL line, 2 pairs whose answers are the same, 1 empty rejected
answer, 1 implicit-prompt pair whose conversations differ before the answer, 3 exact duplicates, 2 answer
conflicts (same prompt, another pair), 3 e-mail addresses (PII).
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_chat_demo import PROBLEMS, PRODUCTS, PROMPT, SYSTEM, answer, unique_tickets, write_csv  # noqa: E402

SEED = 20260511
ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw_pref"
PRIORITIES = ["low", "medium", "high"]
CHATTER = ["Sure! Here is the triage: {}", "Here you go:\n{}", "{}\nLet me know if you need anything else."]
PROSE = ["This looks like a {category} ticket about {product}, priority {priority}.",
         "Category {category}, priority {priority}, product {product}.",
         "The customer has a {category} problem with {product}; I would say {priority} priority."]


def rejected_answer(r: random.Random, triage: dict) -> str:
    """A plausible but wrong answer to a ticket whose right triage is `triage`."""
    kind = r.choices(["wrong_value", "missing_field", "malformed", "chatter", "prose"], weights=[4, 1.5, 2, 1, 1.5])[0]
    if kind == "wrong_value":
        field = r.choice(sorted(triage))
        options = {"category": sorted(PROBLEMS), "priority": PRIORITIES, "product": PRODUCTS}[field]
        return answer(triage | {field: r.choice([o for o in options if o != triage[field]])})
    if kind == "missing_field":
        field = r.choice(sorted(triage))
        return answer({k: v for k, v in triage.items() if k != field})
    if kind == "malformed":
        text = answer(triage)
        return r.choice([text[:-1], text.replace('"', "'"), text.replace(", ", " ", 1), text[:len(text) // 2]])
    if kind == "chatter":
        return r.choice(CHATTER).format(answer(triage))
    return r.choice(PROSE).format(**triage)


def pairs(r: random.Random, seen: set[str]) -> list[str]:
    rows = [{"prompt": PROMPT + t, "chosen": answer(tr), "rejected": rejected_answer(r, tr)}
            for t, tr in unique_tickets(r, 330, seen)]
    rows[4]["rejected"] = rows[4]["chosen"]  # the same answer twice: same_answers
    rows[14]["rejected"] = ""  # no rejected answer: empty_content
    for i in range(2):  # the same prompt with another pair: a conflict
        other = dict(rows[150 + i], rejected=rejected_answer(r, json.loads(rows[150 + i]["chosen"])))
        if other["rejected"] == rows[150 + i]["rejected"]:
            other["rejected"] += " "
        rows.insert(200 + i, other)
    rows[20]["prompt"] += " You can reach me at dana.lee@example.com."  # PII
    lines = [json.dumps(row) for row in rows]
    for i in range(2):  # exact duplicates
        lines.insert(20 + 100 * i, lines[10 + 7 * i])
    lines.insert(66, '{"prompt": "Triage this ticket", "chosen": "{\\"category\\"')  # malformed
    return lines


def conversations(r: random.Random, seen: set[str]) -> list[str]:
    rows = []
    for i, (t, tr) in enumerate(unique_tickets(r, 220, seen)):
        prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}]
        chosen, rejected = answer(tr), rejected_answer(r, tr)
        if i % 8 == 7:  # implicit prompt: each answer is the whole conversation
            rows.append({"chosen": prompt + [{"role": "assistant", "content": chosen}],
                         "rejected": prompt + [{"role": "assistant", "content": rejected}]})
        else:
            rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
    user = rows[7]["rejected"][-2]  # prompt_mismatch (implicit): the rejected conversation's ticket differs
    rows[7]["rejected"][-2] = user | {"content": user["content"] + " Also, my other ticket is still open."}
    rows[5]["rejected"] = rows[5]["chosen"]  # same_answers
    rows[12]["prompt"][1]["content"] += " Mail me at sam.ortiz@example.org."  # PII
    lines = [json.dumps(row) for row in rows]
    lines.insert(18, lines[3])  # an exact duplicate
    return lines


def review(r: random.Random, seen: set[str]) -> list[dict]:
    rows = [{"prompt": PROMPT + t, "preferred": answer(tr), "dispreferred": rejected_answer(r, tr)}
            for t, tr in unique_tickets(r, 140, seen)]
    rows[5]["prompt"] += " My address is kim.wu@example.net."  # PII
    return rows


def main() -> None:
    r = random.Random(SEED)
    seen: set[str] = set()
    pair_lines, conv_lines, review_rows = pairs(r, seen), conversations(r, seen), review(r, seen)
    for sub in ("pairs", "conversations", "review"):
        (RAW / sub).mkdir(parents=True, exist_ok=True)
    (RAW / "pairs" / "prefs.jsonl").write_text("\n".join(pair_lines) + "\n", encoding="utf-8")
    (RAW / "conversations" / "prefs.jsonl").write_text("\n".join(conv_lines) + "\n", encoding="utf-8")
    write_csv(RAW / "review" / "ratings.csv", review_rows)
    print(f"pairs {len(pair_lines)}, conversations {len(conv_lines)}, review {len(review_rows)}")


if __name__ == "__main__":
    main()
