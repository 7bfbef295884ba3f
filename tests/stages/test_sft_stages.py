"""task=sft through ingest, curate, tokenize and evaluate's scoring, on real files and frames."""
from __future__ import annotations

import dataclasses
import json

import polars as pl
import pytest
from transformers import AutoTokenizer

from stages import curate as curate_stage
from stages.ingest import IngestParams, Params, ingest_frames
from stages.tokenize import Params as TokParams
from tunebuild import chat
from tunebuild.params import ChatParams, DataParams, ForgetParams, ModelParams, SourceParams, TaskParams, TokenizeParams
from tunebuild.tasks import sft
from tunebuild.tasks.sft import json_scores
from tests.stages.test_curate import CP

SYSTEM = {"role": "system", "content": "Answer in JSON."}


def source(name: str, fmt: str, files: str, text: str, label: str | None) -> SourceParams:
    return SourceParams(name=name, format=fmt, files=files, license="CC0-1.0", text_field=text, label_field=label,
                        group_field=None, rejected_field=None, encoding="utf-8", delimiter=",", pii_regions=None)


def data(sources, forget=()) -> DataParams:
    return DataParams(name="d", purpose=None, raw_dir="unused", labels=[], sources=sources,
                      forget=ForgetParams(record_ids=list(forget), patterns=[]))


def tok_params(max_length: int = 64, task: str = "sft", **chat_params) -> TokParams:
    """The tokenize stage's params of a chat task: tokenize.max_length and task.chat (truncation, template)."""
    c = ChatParams(**({"template": "chatml", "truncation": "left", "max_new_tokens": 8, "samples": 1} | chat_params))
    return TokParams(tokenize=TokenizeParams(max_length, 100), model=ModelParams("t", "models/tiny-chat", "x"),
                     data=data([]), task=TaskParams(name=task, chat=c))


def conv(user: str, answer: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def test_ingest_maps_the_three_formats_onto_messages(tmp_path):
    (tmp_path / "m").mkdir()
    lines = [json.dumps({"messages": conv("Where is my order?", '{"a": 1}')}),
             json.dumps({"messages": [{"role": "user", "content": 5}]}),  # not a string: quarantined
             json.dumps({"messages": "hello"})]
    (tmp_path / "m/a.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p/a.csv").write_text('prompt,completion\n"Refund please","{""a"": 2}"\n')
    (tmp_path / "i").mkdir()
    pl.DataFrame({"instruction": ["Triage"], "input": ["My card was charged"], "output": ['{"a": 3}']}).write_parquet(
        tmp_path / "i/a.parquet")
    pl.DataFrame({"instruction": ["Triage it"], "output": ['{"a": 4}']}).write_parquet(tmp_path / "i/b.parquet")
    sources = [source("m", "messages", "m/*.jsonl", "messages", None),
               source("p", "prompt_completion", "p/*.csv", "prompt", "completion"),
               source("i", "instruction", "i/*.parquet", "instruction", "output")]
    records, quarantine, stats = ingest_frames(tmp_path, Params(IngestParams(10_000, 100), data(sources)))
    assert quarantine["line"].to_list() == [2, 3] and "message 0" in quarantine["error"][0]
    messages = dict(zip(records["file"], (json.loads(t) for t in records["text"])))  # files in path order
    assert messages[f"{tmp_path}/m/a.jsonl"] == conv("Where is my order?", '{"a": 1}')
    assert messages[f"{tmp_path}/p/a.csv"] == [{"role": "user", "content": "Refund please"},
                                                {"role": "assistant", "content": '{"a": 2}'}]
    assert messages[f"{tmp_path}/i/a.parquet"][0]["content"] == "Triage\n\nMy card was charged"
    assert messages[f"{tmp_path}/i/b.parquet"][0]["content"] == "Triage it"  # no `input` column in this file
    messages = list(messages.values())
    assert records["record_id"].to_list() == [chat.conversation_id(m) for m in messages]
    assert records["label"].null_count() == records.height
    assert stats["total"] == {"files": 4, "units": 6, "records": 4, "quarantined": 2}


def curate_params(forget=()) -> curate_stage.Params:
    cp = dataclasses.replace(CP, max_chars=400, max_words=60, license_allowlist=["CC0-1.0"])
    return curate_stage.Params(curate=cp, data=data([], forget), task=TaskParams(name="sft", chat=None))


def records(convs: list[list[dict]]) -> pl.DataFrame:
    from stages.ingest import RECORDS_SCHEMA

    n = len(convs)
    return pl.DataFrame({"record_id": [chat.conversation_id(c) for c in convs], "text": [chat.dumps(c) for c in convs],
                         "label": [None] * n, "group": [None] * n, "source": ["s"] * n, "file": ["f.jsonl"] * n,
                         "line": list(range(1, n + 1)), "license": ["CC0-1.0"] * n}, schema=RECORDS_SCHEMA)


def test_curate_sft_rules_pii_and_conflicts():
    convs = [
        conv("My router keeps dropping the wifi connection", '{"category": "bug"}'),            # 1 kept
        conv("My router keeps dropping the wifi connection", '{"category": "setup"}'),          # 2 conflict with 1
        [SYSTEM, {"role": "user", "content": "Where is the parcel I ordered last week"}],       # 3 role_order
        conv("The invoice total looks wrong this month", " "),                                  # 4 empty_content
        conv("Please write to me at jane.doe@example.com about the refund", '{"category": "refund"}'),  # 5 PII
        conv("Cancel my subscription before the next billing date", '{"category": "cancel"}'),  # 6 forgotten
        conv("Cancel my subscription before the next billing date", '{"category": "cancel"}'),  # 7 duplicate of 6
    ]
    recs = records(convs)
    curated, rejected, stats = curate_stage.curate(recs, curate_params(forget=[recs["record_id"][5]]))
    rules = dict(zip(rejected["line"].to_list(), rejected["rule"].to_list()))
    assert rules == {1: "label_conflict", 2: "label_conflict", 3: "role_order", 4: "empty_content", 6: "forget",
                     7: "forget"}
    assert curated["line"].to_list() == [5]
    assert curated["messages"][0][1]["content"] == "Please write to me at [EMAIL] about the refund"
    assert "[EMAIL]" in curated["text"][0] and curated["label"][0] == '{"category": "refund"}'
    forgotten = rejected.filter(pl.col("rule") == "forget")
    assert forgotten["messages"].null_count() == forgotten.height == 2
    assert stats["rejected_by_rule"]["role_order"] == 1 and stats["rejected_by_rule"]["empty_content"] == 1


def test_tokenize_chat_columns_and_counts():
    tok = AutoTokenizer.from_pretrained("models/tiny-chat")
    convs = [conv("short", '{"a": 1}'), conv("a much longer ticket " * 20, '{"a": 2}')]
    df = pl.DataFrame({"record_id": ["r1", "r2"], "messages": convs, "label": ['{"a": 1}', '{"a": 2}']})
    for policy, expected in (("left", {"truncated": 1, "dropped": 0}), ("drop", {"truncated": 0, "dropped": 1})):
        out, stats = sft.tokenize(df, (tok, chat.TEMPLATES["chatml"]), tok_params(60, truncation=policy))
        assert {k: stats[k] for k in expected} == expected
        assert out.columns == ["record_id", "input_ids", "labels", "prompt_length", "completion"]
        assert out["input_ids"].list.len().max() <= 60
        assert stats["trained_tokens"] == sum(sum(x != chat.IGNORE for x in lab) for lab in out["labels"].to_list())
        row = out.row(0, named=True)
        assert tok.decode(row["input_ids"][row["prompt_length"]:], skip_special_tokens=True).strip() == row["completion"]


def test_json_scores():
    refs = ['{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}', '{"a": 3, "b": "z"}', '{"a": 4, "b": "w"}']
    answers = ['{"a": 1, "b": "x"}', '{"a": 2, "b": "n"}', "not json", '["a"]']
    summary, per_field = json_scores(answers, refs)
    assert summary == {"json_valid": 0.5, "exact_match": 0.25}
    assert per_field == {"a": 0.5, "b": 0.25}
    assert json_scores(answers, ["plain text"] + refs[1:]) == ({}, {})  # not a structured-output dataset


@pytest.mark.parametrize("bad", [{"truncation": "right"}, {"template": "vicuna"}])
def test_bad_chat_params_are_user_errors(bad):
    from tunebuild.errors import UserError

    with pytest.raises(UserError, match=f"task.chat.{next(iter(bad))}"):
        sft.tokenizer(tok_params(64, **bad))
