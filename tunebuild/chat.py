"""Chat data for task=sft and task=preference: input formats -> messages, chat templates, label masks,
truncation, packing.

Formats (a source's `format`; ingest maps each row onto `messages`, a list of {role, content}):
  messages           text_field holds the list itself (JSONL)
  prompt_completion  text_field = the prompt (user turn), label_field = the completion (assistant turn)
  instruction        text_field = the instruction, label_field = the output; an `input` column, when the
                     file has one, is appended to the instruction (the Alpaca layout)
  preference         text_field = the prompt, label_field = the chosen answer, rejected_field = the
                     rejected one: strings (a user turn, assistant turns) or, in JSONL, lists of messages
                     (a conversation so far; answers that continue it). No prompt field in a JSONL row and
                     answers that are whole conversations: the prompt is what they share (TRL's implicit
                     prompt). Ingest maps a row onto two conversations, {"chosen": [...], "rejected": [...]}.

A conversation's record_id hashes its turns up to the final assistant turn: an edited answer is
a changed record, and two answers to one prompt are a conflict (curate rule label_conflict). A
preference pair's record_id is its chosen conversation's: one pair per prompt; another pair for the
same prompt is a label_conflict.

Labels are -100 everywhere but on assistant turns (every assistant turn, with its end-of-turn
token): the template renders the conversation, and the characters each assistant turn adds are
found by rendering the prefix before it (with the generation prompt) and the prefix that ends
with it. Any template that renders a prefix of a conversation as a prefix of the whole works,
the tokenizer's own included; one that does not (it rewrites earlier turns once a later one comes, e.g. drops
an earlier answer's reasoning) raises TemplateError, which the tasks report as one line naming the model.

Evaluation stops an answer at the tokens that end a turn: the tokenizer's end-of-sequence token and what the
template writes right after an assistant turn's content (end_of_turn), whatever the template.
"""
from __future__ import annotations

from typing import Any

import orjson

from tunebuild.records import record_id

FORMATS = ("text", "messages", "prompt_completion", "instruction", "preference")
ROLES = ("system", "user", "assistant")
IGNORE = -100
INPUT_COLUMN = "input"

# Named templates for tokenizers without their own (Jinja, as in tokenizer_config.json's chat_template).
TEMPLATES = {
    "chatml": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "llama3": (
        "{{ '<|begin_of_text|>' }}{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{% endif %}"),
}
END_OF_TURN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}


# ---- input formats -> messages (ingest) -------------------------------------------------------------

def source_fields(src) -> dict[str, str | None]:
    """Role -> column name of what ingest reads from a row of this source (text, label, group, then the
    format's own: the rejected answer, the optional `input`); None: not read."""
    fields = {"text": src.text_field, "label": src.label_field, "group": src.group_field}
    if src.format == "preference":
        fields["rejected"] = src.rejected_field
    return fields | dict.fromkeys(optional_columns(src), INPUT_COLUMN)


def required_columns(src) -> list[str]:
    """Columns every file of this source must have."""
    return [c for c in source_fields(src).values() if c and c not in optional_columns(src)]


def optional_columns(src) -> list[str]:
    """Columns read when a file has them: the Alpaca `input` of the instruction format."""
    return [INPUT_COLUMN] if src.format == "instruction" else []


def check_source(src, file_format: str, where: str) -> None:
    """A source's format must be known; a messages list is read from JSONL only."""
    from tunebuild.errors import UserError

    if src.format not in FORMATS:
        raise UserError(f"params.yaml: {where}.format: '{src.format}' is not one of {', '.join(FORMATS)}")
    if src.format == "messages" and file_format != "jsonl":
        raise UserError(f"params.yaml: {where}: format messages is read from JSONL files only (got a {file_format} "
                        "file); use prompt_completion or instruction columns for CSV and Parquet")
    if (src.label_field is None) != (src.format == "messages"):
        raise UserError(f"params.yaml: {where}.label_field: set it for format {src.format}"
                        if src.label_field is None else f"params.yaml: {where}.label_field: must be null for format messages")
    if (src.rejected_field is None) == (src.format == "preference"):
        raise UserError(f"params.yaml: {where}.rejected_field: set it (the rejected answer) for format preference"
                        if src.rejected_field is None else
                        f"params.yaml: {where}.rejected_field: must be null for format {src.format}")


def takes_messages(fmt: str, role: str, value: Any) -> bool:
    """Whether a JSON field value is read as a list of messages (else as a string)."""
    return (fmt == "messages" and role == "text") or (
        fmt == "preference" and role in ("text", "label", "rejected") and isinstance(value, list))


def parse_messages(value: Any) -> tuple[list[dict] | None, str | None]:
    """A JSON value as a list of {role, content} strings, or an error."""
    if not isinstance(value, list):
        return None, f"is {type(value).__name__}, expected a list of {{role, content}} messages"
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return None, f"message {i} is not an object with string 'role' and 'content'"
        out.append({"role": m["role"], "content": m["content"]})
    return out, None


def conversation(fmt: str, text: Any, label: str | None, extra: str | None = None) -> list[dict]:
    """One row of a source in format `fmt` as messages (missing strings become empty turns, for curate to reject)."""
    if fmt == "messages":
        return text
    prompt = text or ""
    if fmt == "instruction" and extra and extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": label or ""}]


def preference_pair(prompt: Any, chosen: Any, rejected: Any) -> dict[str, list[dict]]:
    """One preference row as its two conversations: the prompt's turns (a string is a user turn; none: the
    answers carry it), then each answer's (a string is an assistant turn). Curate checks that both share
    the prompt, end with an assistant turn and differ."""
    def turns(value: Any, role: str) -> list[dict]:
        return list(value) if isinstance(value, list) else [{"role": role, "content": value or ""}]

    head = [] if prompt is None else turns(prompt, "user")
    return {"chosen": head + turns(chosen, "assistant"), "rejected": head + turns(rejected, "assistant")}


def prompt_turns(messages: list[dict]) -> list[dict]:
    """The turns before the final assistant turn (all turns if it does not end with one)."""
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages


def conversation_id(messages: list[dict]) -> str:
    return record_id("\n".join(f"{m['role']}: {m['content']}" for m in prompt_turns(messages)))


def dumps(messages: list[dict] | dict) -> str:
    return orjson.dumps(messages).decode()


# ---- chat templates and label masks (tokenize) --------------------------------------------------------

def pick_template(tokenizer, name: str) -> str:
    """The tokenizer's own chat template when it has one, else the named one from task.chat.template."""
    return tokenizer.chat_template or TEMPLATES[name]


def render(tokenizer, template: str, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=generation_prompt)


class TemplateError(ValueError):
    """The chat template does not render a conversation's prefix as a prefix of the whole conversation."""


def end_of_turn(tokenizer, template: str) -> list[int]:
    """The token(s) the template writes right after an assistant turn's content, when that text is one token
    (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `</s>`, ...); [] when it writes none or several."""
    marker = "Zq7 marker"
    try:
        text = render(tokenizer, template, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}])
    except Exception:  # noqa: BLE001 (a template with rules of its own, e.g. a required system turn)
        return []
    after = text[text.find(marker) + len(marker):].strip() if marker in text else ""
    if not after:
        return []
    vocab = tokenizer.get_vocab()
    if after in vocab:
        return [vocab[after]]
    head = after.split()[0]
    return [vocab[head]] if head in vocab and head in tokenizer.all_special_tokens else []


def assistant_spans(tokenizer, template: str, messages: list[dict]) -> tuple[str, list[tuple[int, int]], int]:
    """The rendered text, the character spans of the assistant turns (content + end-of-turn, without the
    template's trailing whitespace) and where the final assistant turn's content starts."""
    text = render(tokenizer, template, messages)
    spans, start = [], len(text)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, template, messages[:i], generation_prompt=True))
        upto = render(tokenizer, template, messages[:i + 1])
        if not text.startswith(upto):
            raise TemplateError("the chat template does not render a conversation's prefix as a prefix of it")
        spans.append((start, start + len(upto[start:].rstrip())))
    return text, spans, start


def label_tokens(offsets: list[tuple[int, int]], ids: list[int], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's id where it lies inside an assistant span, else IGNORE."""
    labels, k = [IGNORE] * len(ids), 0
    for t, (a, b) in enumerate(offsets):
        while k < len(spans) and spans[k][1] <= a:
            k += 1
        if k < len(spans) and a >= spans[k][0] and b <= spans[k][1] and b > a:
            labels[t] = ids[t]
    return labels


def final_answer_labels(labels: list[int], prompt_length: int) -> list[int]:
    """Labels on the final answer only (task=preference: earlier assistant turns are part of the prompt)."""
    return [IGNORE] * prompt_length + labels[prompt_length:]


def fit(ids: list[int], labels: list[int], prompt_length: int, max_length: int, policy: str):
    """Apply the truncation policy: (ids, labels, prompt_length, outcome) or None when dropped.

    `left` cuts tokens from the start of the prompt; a final answer that does not fit whole is dropped.
    """
    if len(ids) <= max_length:
        return ids, labels, prompt_length, "kept"
    cut = len(ids) - max_length
    if policy == "drop" or cut >= prompt_length:
        return None
    return ids[cut:], labels[cut:], prompt_length - cut, "truncated"


def encode(tokenizer, template: str, conversations: list[list[dict]], max_length: int, policy: str
           ) -> tuple[list[tuple[int, list[int], list[int], int, str]], dict]:
    """Conversations -> (index, input_ids, labels, prompt_length, kept|truncated) for the kept ones, and counts.

    prompt_length: where the final assistant turn starts (evaluate generates from there).
    """
    rendered = [assistant_spans(tokenizer, template, m) for m in conversations]
    encodings = tokenizer.backend_tokenizer.encode_batch([r[0] for r in rendered], add_special_tokens=False)
    rows, counts = [], {"kept": 0, "truncated": 0, "dropped": 0}
    for i, ((_, spans, start), e) in enumerate(zip(rendered, encodings)):
        labels = label_tokens(e.offsets, e.ids, spans)
        prompt_length = next((t for t, (a, _) in enumerate(e.offsets) if a >= start), len(e.ids))
        fitted = fit(e.ids, labels, prompt_length, max_length, policy)
        if fitted is None:
            counts["dropped"] += 1
            continue
        counts[fitted[3]] += 1
        rows.append((i, *fitted))
    return rows, counts


# ---- packing (train, evaluate) ------------------------------------------------------------------------

def pack(lengths: list[int], order: list[int], row_length: int, window: int = 64) -> list[list[int]]:
    """Examples (in `order`) into rows of at most row_length tokens, never split: first fit among the
    last `window` rows still open (bounded work per example, deterministic)."""
    rows: list[list[int]] = []
    room: list[int] = []
    open_rows: list[int] = []
    for i in order:
        n = lengths[i]
        for r in open_rows:
            if n <= room[r]:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(row_length - n)
            open_rows.append(len(rows) - 1)
            if len(open_rows) > window:
                open_rows.pop(0)
    return rows
