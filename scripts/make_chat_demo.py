r"""Generate the chat (task=sft) demo: ticket triage as structured output, and a tiny causal LM to tune.

Run from the repo root:  python scripts/make_chat_demo.py
Deterministic: one random.Random(SEED), no clock; every run writes the same bytes.

The job: a support ticket -> a JSON object {"category", "priority", "product"}. The category follows
the problem described, the priority follows cue phrases ("asap", "no rush", ...), the product is named
in the ticket. Three sources, one per input format (and one per file format):

  data/raw_chat/conversations/chats.jsonl  messages: system + user -> assistant; 1 in 6 multi-turn (the
                                           assistant first asks which product, the user answers)  CC-BY-4.0
  data/raw_chat/email/pairs.csv            prompt,completion                                      CC0-1.0
  data/raw_chat/forms/forms.parquet        instruction,input,output (Alpaca layout)               CC-BY-4.0

Defects planted on purpose: 2 malformed JSONL lines, 2 conversations that end with the user, 2 empty
answers, 6 exact duplicates, 2 answer conflicts (same prompt, another answer), 6 e-mail addresses (PII).

The model, models/tiny-chat/: a Llama-style config (random init; tunebuild seeds it) and a byte-level
BPE tokenizer trained here on the demo texts, with ChatML and Llama-3 special tokens and no chat
template of its own (so task.chat.template picks the template).
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import polars as pl

SEED = 20260405
ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw_chat"
MODEL = ROOT / "models" / "tiny-chat"
SYSTEM = "You triage support tickets. Reply with one JSON object with the keys category, priority and product."
PROMPT = "Triage this support ticket. Answer with JSON (category, priority, product).\n\nTicket: "
INSTRUCTION = "Extract the category, priority and product of the support ticket as a JSON object."
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
           "<|end_header_id|>", "<|eot_id|>"]
VOCAB = 1024

PRODUCTS = ["AcmeRouter X2", "CloudDesk", "PhotoSync", "PayFlow", "SmartCam 4K", "NoteHub", "FitBand", "StreamBox"]
PROBLEMS = {
    "billing": ["I was charged twice for {p} this month", "the invoice for {p} shows the wrong amount",
                "my card was billed for {p} after I changed plans", "why did the {p} subscription price go up",
                "there is an unknown charge from {p} on my statement"],
    "bug_report": ["{p} crashes every time I open the settings page", "the latest {p} update broke syncing",
                   "{p} shows a blank screen after login", "{p} freezes when I upload a file",
                   "notifications from {p} arrive twice"],
    "account_access": ["I cannot log in to {p} anymore", "the password reset link for {p} never arrives",
                       "my {p} account is locked", "two factor codes for {p} are rejected",
                       "{p} says my email is not registered"],
    "order_status": ["where is my {p} order", "my {p} shipment has not moved for a week",
                     "the tracking page for my {p} says pending", "my {p} was supposed to arrive on Monday",
                     "has my {p} order shipped yet"],
    "refund": ["I want my money back for {p}", "please refund the {p} I returned",
               "the refund for {p} has not reached my account", "I returned {p} and still have no refund",
               "can I get a refund for the unused {p} months"],
    "technical_setup": ["how do I connect {p} to my wifi", "I need help installing {p} on a new laptop",
                        "{p} does not pair with my phone", "how do I set up {p} for my team",
                        "which settings should I use to configure {p}"],
}
CUES = {"high": ["This is urgent.", "Please fix it asap.", "We need this solved right now.",
                 "Our whole team is blocked."],
        "low": ["No rush.", "Whenever you get a chance.", "Just curious.", "It is not a big deal."],
        "medium": ["", "Thanks.", "Can you take a look?", "Please advise."]}
OPENINGS = ["", "Hi,", "Hello team,", "Good morning,", "Hey,"]
CONTEXT = ["I have been a customer for two years.", "I already restarted everything.", "This started yesterday.",
           "My colleague has the same problem.", "I tried the help center first.", "It worked fine last week.",
           "I am on the family plan.", "I use it every day for work."]


def ticket(r: random.Random) -> tuple[str, dict]:
    """A ticket text and its triage."""
    category = r.choice(sorted(PROBLEMS))
    priority = r.choices(["low", "medium", "high"], weights=[1, 2, 1.5])[0]
    product = r.choice(PRODUCTS)
    problem = r.choice(PROBLEMS[category]).format(p=product)
    parts = [r.choice(OPENINGS), problem[0].upper() + problem[1:] + r.choice([".", "!", "?", ""])]
    parts += r.sample(CONTEXT, r.randint(0, 2)) + [r.choice(CUES[priority])]
    text = " ".join(p for p in parts if p)
    return text, {"category": category, "priority": priority, "product": product}


def answer(triage: dict) -> str:
    return json.dumps(triage)


def conversation(r: random.Random, text: str, triage: dict, multi_turn: bool) -> list[dict]:
    system = {"role": "system", "content": SYSTEM}
    if not multi_turn:
        return [system, {"role": "user", "content": text}, {"role": "assistant", "content": answer(triage)}]
    vague = text.replace(triage["product"], "it")
    return [system, {"role": "user", "content": vague},
            {"role": "assistant", "content": "Which product is this about?"},
            {"role": "user", "content": r.choice(["It is ", "", "The "]) + triage["product"] + "."},
            {"role": "assistant", "content": answer(triage)}]


def unique_tickets(r: random.Random, n: int, seen: set[str]) -> list[tuple[str, dict]]:
    out = []
    while len(out) < n:
        text, triage = ticket(r)
        if text.lower() not in seen:
            seen.add(text.lower())
            out.append((text, triage))
    return out


def chats(r: random.Random, seen: set[str]) -> list[str]:
    rows = [json.dumps({"id": f"c{i:04d}", "messages": conversation(r, t, tr, i % 6 == 5)})
            for i, (t, tr) in enumerate(unique_tickets(r, 520, seen))]
    for i in range(2):  # a conversation that ends with the user: role_order
        msgs = json.loads(rows[10 + i])["messages"][:2]
        rows.insert(40 + 100 * i, json.dumps({"id": f"bad{i}", "messages": msgs}))
    for i in range(3):  # an exact duplicate
        rows.insert(60 + 120 * i, rows[5 + 30 * i])
    rows.insert(77, '{"id": "x1", "messages": [{"role": "user", "content": "hi"}')  # malformed
    rows.insert(301, '{"id": "x2", "messages": "not a list"}')
    return rows


def pairs(r: random.Random, seen: set[str]) -> list[dict]:
    rows = [{"prompt": PROMPT + t, "completion": answer(tr)} for t, tr in unique_tickets(r, 420, seen)]
    for i in range(3):  # PII: an e-mail address in the ticket
        rows[20 + 50 * i]["prompt"] += f" Reach me at user{i}@example.com."
    rows[33]["completion"] = ""  # an empty answer
    for i in range(2):  # the same prompt with another answer: a conflict
        other = json.loads(rows[100 + i]["completion"])
        other["priority"] = "low" if other["priority"] != "low" else "high"
        rows.insert(200 + i, {"prompt": rows[100 + i]["prompt"], "completion": answer(other)})
    for i in range(3):
        rows.insert(300 + i, dict(rows[50 + i]))
    return rows


def forms(r: random.Random, seen: set[str]) -> list[dict]:
    rows = [{"instruction": INSTRUCTION, "input": t, "output": answer(tr)} for t, tr in unique_tickets(r, 420, seen)]
    for i in range(3):
        rows[70 + 60 * i]["input"] += f" My email is agent{i}@example.org."
    rows[90]["output"] = " "
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def corpus(chat_rows: list[str], pair_rows: list[dict], form_rows: list[dict]) -> list[str]:
    texts = [SYSTEM, PROMPT, INSTRUCTION, "Which product is this about?", "system user assistant"]
    for line in chat_rows:
        try:
            texts += [m["content"] for m in json.loads(line)["messages"]]
        except (json.JSONDecodeError, TypeError):
            continue
    texts += [v for row in pair_rows + form_rows for v in row.values()]
    return texts


def build_tokenizer(texts: list[str]):
    """Byte-level BPE: lossless (JSON decodes back exactly), deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def write_model(texts: list[str]) -> None:
    from transformers import LlamaConfig

    MODEL.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(texts)
    tok.save(str(MODEL / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "unk_token": None, "model_max_length": 512, "clean_up_tokenization_spaces": False}
    (MODEL / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=tok.token_to_id("<|im_end|>"),
                      pad_token_id=tok.token_to_id("<|endoftext|>"), use_cache=False, initializer_range=0.1,
                      architectures=["LlamaForCausalLM"])
    data = cfg.to_dict()
    data.pop("transformers_version", None)
    (MODEL / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main() -> None:
    r = random.Random(SEED)
    seen: set[str] = set()
    chat_rows, pair_rows, form_rows = chats(r, seen), pairs(r, seen), forms(r, seen)
    for sub in ("conversations", "email", "forms"):
        (RAW / sub).mkdir(parents=True, exist_ok=True)
    (RAW / "conversations" / "chats.jsonl").write_text("\n".join(chat_rows) + "\n", encoding="utf-8")
    write_csv(RAW / "email" / "pairs.csv", pair_rows)
    pl.DataFrame(form_rows, schema={"instruction": pl.String, "input": pl.String, "output": pl.String}).write_parquet(
        RAW / "forms" / "forms.parquet")
    write_model(corpus(chat_rows, pair_rows, form_rows))
    print(f"chats {len(chat_rows)}, pairs {len(pair_rows)}, forms {len(form_rows)}; model in {MODEL.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
