"""Chat templates, assistant-only labels (token by token), truncation, input formats and packing."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from tunebuild import chat
from tunebuild.errors import UserError
from tunebuild.params import SourceParams

TOK = AutoTokenizer.from_pretrained("models/tiny-chat")
MULTI = [
    {"role": "system", "content": "You triage support tickets."},
    {"role": "user", "content": "My PayFlow invoice is wrong"},
    {"role": "assistant", "content": "Which product is this about?"},
    {"role": "user", "content": "It is PayFlow."},
    {"role": "assistant", "content": '{"category": "billing", "priority": "medium", "product": "PayFlow"}'},
]
THREE_ANSWERS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"},
                 {"role": "user", "content": "again"}, {"role": "assistant", "content": "Hi again"},
                 {"role": "user", "content": "bye"}, {"role": "assistant", "content": "Bye"}]


def labelled(messages, template):
    text, spans, _ = chat.assistant_spans(TOK, template, messages)
    enc = TOK.backend_tokenizer.encode(text, add_special_tokens=False)
    return enc, chat.label_tokens(enc.offsets, enc.ids, spans)


@pytest.mark.parametrize("name", ["chatml", "llama3"])
@pytest.mark.parametrize("messages", [MULTI, THREE_ANSWERS])
def test_labels_are_exactly_the_assistant_turns_with_their_end_of_turn(name, messages):
    """Token by token: each token is a target iff it belongs to an assistant turn (content + end-of-turn)."""
    enc, labels = labelled(messages, chat.TEMPLATES[name])
    eot = chat.END_OF_TURN[name]
    answers = [m["content"] + eot for m in messages if m["role"] == "assistant"]
    # walk the tokens: runs of targets are the answers in order, every other token is -100
    runs, current = [], []
    for tok_id, label in zip(enc.ids, labels):
        if label == chat.IGNORE:
            if current:
                runs.append(current)
                current = []
        else:
            assert label == tok_id
            current.append(tok_id)
    if current:
        runs.append(current)
    assert [TOK.decode(r, skip_special_tokens=False) for r in runs] == answers
    # and nothing of the system/user turns or of the template's role headers is a target
    for tok_id, label, (a, b) in zip(enc.ids, labels, enc.offsets):
        piece = TOK.decode([tok_id], skip_special_tokens=False)
        if piece in ("<|im_start|>", "<|start_header_id|>", "<|begin_of_text|>"):
            assert label == chat.IGNORE


def test_the_tokenizers_own_template_wins_over_the_named_one():
    tok = AutoTokenizer.from_pretrained("models/tiny-chat")
    own = chat.TEMPLATES["llama3"].replace("<|begin_of_text|>", "")
    tok.chat_template = own
    assert chat.pick_template(tok, "chatml") == own
    assert chat.pick_template(TOK, "chatml") == chat.TEMPLATES["chatml"]
    text, spans, _ = chat.assistant_spans(tok, own, THREE_ANSWERS)
    assert [text[a:b] for a, b in spans] == ["Hello<|eot_id|>", "Hi again<|eot_id|>", "Bye<|eot_id|>"]


def test_a_template_that_rewrites_earlier_turns_is_refused():
    bad = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ messages|length }}"
    with pytest.raises(ValueError, match="prefix"):
        chat.assistant_spans(TOK, bad, THREE_ANSWERS)


def test_truncation_policies_are_applied_and_counted():
    convs = [MULTI, THREE_ANSWERS]
    full, counts = chat.encode(TOK, chat.TEMPLATES["chatml"], convs, 10_000, "left")
    assert counts == {"kept": 2, "truncated": 0, "dropped": 0}
    longest = max(len(r[1]) for r in full)
    limit = longest - 5
    left, counts = chat.encode(TOK, chat.TEMPLATES["chatml"], convs, limit, "left")
    assert counts["truncated"] == 1 and counts["dropped"] == 0
    (i, ids, labels, start, outcome), = [r for r in left if len(r[1]) == limit]
    assert outcome == "truncated"
    original = next(r for r in full if r[0] == i)
    assert ids == original[1][5:] and labels == original[2][5:] and start == original[3] - 5  # cut on the left
    dropped, counts = chat.encode(TOK, chat.TEMPLATES["chatml"], convs, limit, "drop")
    assert counts["dropped"] == 1 and len(dropped) == 1
    # an answer that does not fit whole is dropped even under `left`
    assert chat.fit(list(range(10)), [0] * 10, prompt_length=3, max_length=6, policy="left") is None


def test_prompt_length_points_at_the_final_answer():
    (_, ids, labels, start, _), = chat.encode(TOK, chat.TEMPLATES["chatml"], [MULTI], 10_000, "drop")[0]
    assert TOK.decode(ids[start:], skip_special_tokens=True).startswith('{"category"')
    assert all(label == chat.IGNORE for label in labels[start - 3:start])


def source(fmt: str, label_field="out") -> SourceParams:
    return SourceParams(name="s", format=fmt, files="*", license="CC0-1.0", text_field="in", label_field=label_field,
                        group_field=None, rejected_field=None, encoding="utf-8", delimiter=",", pii_regions=None)


def test_input_formats_map_onto_messages():
    assert chat.conversation("prompt_completion", "Q", "A") == [{"role": "user", "content": "Q"},
                                                                 {"role": "assistant", "content": "A"}]
    assert chat.conversation("instruction", "Do it", "done", "the input")[0]["content"] == "Do it\n\nthe input"
    assert chat.conversation("instruction", "Do it", "done", "  ")[0]["content"] == "Do it"
    assert chat.conversation("prompt_completion", None, None)[1] == {"role": "assistant", "content": ""}
    assert chat.parse_messages([{"role": "user", "content": "x", "extra": 1}]) == ([{"role": "user", "content": "x"}], None)
    assert chat.parse_messages([{"role": "user", "content": 3}])[1].startswith("message 0")
    assert chat.parse_messages("text")[1].startswith("is str")
    assert list(chat.source_fields(source("instruction"))) == ["text", "label", "group", "input"]


def test_record_id_hashes_the_turns_before_the_final_answer():
    a = chat.conversation("prompt_completion", "Q", "A")
    assert chat.conversation_id(a) == chat.conversation_id(chat.conversation("prompt_completion", "Q", "B"))
    assert chat.conversation_id(a) != chat.conversation_id(chat.conversation("prompt_completion", "Q2", "A"))
    assert chat.conversation_id(a) == chat.conversation_id(chat.conversation("prompt_completion", "  q ", "A"))


@pytest.mark.parametrize("fmt, file_format, label_field, needle", [
    ("chat", "jsonl", "out", "format"), ("messages", "csv", None, "JSONL files only"),
    ("messages", "jsonl", "out", "must be null"), ("prompt_completion", "csv", None, "set it"),
])
def test_bad_sources_are_user_errors(fmt, file_format, label_field, needle):
    with pytest.raises(UserError, match=needle):
        chat.check_source(source(fmt, label_field), file_format, "data.sources[0]")


def test_packing_keeps_examples_whole_and_rows_within_length():
    lengths = [(i * 37) % 90 + 10 for i in range(200)]
    rows = chat.pack(lengths, list(range(200)), 128)
    assert sorted(i for r in rows for i in r) == list(range(200))
    assert all(sum(lengths[i] for i in r) <= 128 for r in rows)
    assert len(rows) < 200 * 0.75  # several examples share a row
    assert chat.pack(lengths, list(range(200)), 128) == rows
