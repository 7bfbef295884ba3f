"""task=preference through ingest and curate, on real files and frames: the layouts, the schema's rules, PII
and forget inside both conversations, source checks."""
from __future__ import annotations

import json

import polars as pl
import pytest

from stages import curate as curate_stage
from stages.ingest import IngestParams, Params, ingest_frames
from tunebuild import chat
from tunebuild.errors import UserError
from tunebuild.params import SourceParams, TaskParams
from tests.stages.test_sft_stages import SYSTEM, curate_params, data


def source(name: str, files: str, chosen: str = "chosen", rejected: str | None = "rejected", fmt: str = "preference"
           ) -> SourceParams:
    return SourceParams(name=name, format=fmt, files=files, license="CC0-1.0", text_field="prompt", label_field=chosen,
                        rejected_field=rejected, group_field=None, encoding="utf-8", delimiter=",", pii_regions=None)


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_ingest_maps_the_layouts_onto_two_conversations(tmp_path):
    user = {"role": "user", "content": "My invoice is wrong"}
    lines = [{"prompt": "Refund please", "chosen": '{"c": "refund"}', "rejected": "refund"},             # strings
             {"prompt": [SYSTEM, user], "chosen": [assistant('{"c": 1}')], "rejected": [assistant("1")]},  # messages
             {"chosen": [SYSTEM, user, assistant('{"c": 2}')], "rejected": [SYSTEM, user, assistant("2")]},  # implicit
             {"prompt": "x", "chosen": 5, "rejected": "y"},                                               # quarantined
             {"prompt": "x", "chosen": [{"role": "assistant"}], "rejected": "y"}]                         # quarantined
    (tmp_path / "j").mkdir()
    (tmp_path / "j/a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "c").mkdir()
    (tmp_path / "c/a.csv").write_text('prompt,preferred,dispreferred\n"Where is my order?","{""c"": 3}","soon"\n')
    (tmp_path / "c/b.csv").write_text("prompt,preferred\nx,y\n")  # no rejected column: the file is quarantined
    sources = [source("j", "j/*.jsonl"), source("c", "c/*.csv", "preferred", "dispreferred")]
    records, quarantine, stats = ingest_frames(tmp_path, Params(IngestParams(10_000, 100), data(sources)))
    assert quarantine.sort("file", "line")["line"].to_list() == [1, 4, 5]
    assert "no column 'dispreferred'" in quarantine["error"][0]
    pairs = [json.loads(t) for t in records["text"]]
    assert pairs[0] == {"chosen": [{"role": "user", "content": "Where is my order?"}, assistant('{"c": 3}')],
                        "rejected": [{"role": "user", "content": "Where is my order?"}, assistant("soon")]}
    assert pairs[1]["rejected"] == [{"role": "user", "content": "Refund please"}, assistant("refund")]
    assert pairs[2] == {"chosen": [SYSTEM, user, assistant('{"c": 1}')], "rejected": [SYSTEM, user, assistant("1")]}
    assert pairs[3] == {"chosen": [SYSTEM, user, assistant('{"c": 2}')], "rejected": [SYSTEM, user, assistant("2")]}
    # the id is the prompt's: the explicit and the implicit layouts of one prompt are the same record
    assert records["record_id"][2] == records["record_id"][3] == chat.conversation_id([SYSTEM, user])
    assert stats["total"] == {"files": 3, "units": 7, "records": 4, "quarantined": 3}


def pref_records(pairs: list[dict]) -> pl.DataFrame:
    from stages.ingest import RECORDS_SCHEMA

    n = len(pairs)
    return pl.DataFrame({"record_id": [chat.conversation_id(x["chosen"]) for x in pairs],
                         "text": [chat.dumps(x) for x in pairs], "label": [None] * n, "group": [None] * n,
                         "source": ["s"] * n, "file": ["f.jsonl"] * n, "line": list(range(1, n + 1)),
                         "license": ["CC0-1.0"] * n}, schema=RECORDS_SCHEMA)


def test_curate_preference_rules_pii_and_forget():
    def pair(user: str, chosen: str, rejected: str) -> dict:
        return chat.preference_pair([SYSTEM, {"role": "user", "content": user}], chosen, rejected)

    mismatch = pair("Where is the parcel I ordered last week", '{"c": "order"}', "no idea")
    mismatch["rejected"][1] = {"role": "user", "content": "Another question entirely, about refunds"}
    pairs = [
        pair("My router keeps dropping the wifi connection", '{"c": "bug"}', '{"c": "billing"}'),        # 1 kept
        pair("The invoice total looks wrong this month", '{"c": "billing"}', ' {"c": "billing"} '),      # 2 same
        mismatch,                                                                                         # 3
        pair("Please refund my unused months of the plan", '{"c": "refund"}', ""),                       # 4 empty
        pair("Please write to me at jane.doe@example.com about it", '{"c": "refund"}', "Mail jane.doe@example.com"),
        pair("Cancel my subscription before the next billing date", '{"c": "cancel"}', "cancel"),        # 6 forgotten
        pair("My router keeps dropping the wifi connection", '{"c": "bug"}', "a bug"),                   # 7 conflict
        chat.preference_pair(None, "just an answer", "another answer"),                                  # 8 no user
    ]
    recs = pref_records(pairs)
    p = curate_params(forget=[recs["record_id"][5]])
    p.task = TaskParams(name="preference", chat=None)
    curated, rejected, stats = curate_stage.curate(recs, p)
    rules = dict(zip(rejected["line"].to_list(), rejected["rule"].to_list()))
    assert rules == {1: "label_conflict", 2: "same_answers", 3: "prompt_mismatch", 4: "empty_content", 6: "forget",
                     7: "label_conflict", 8: "role_order"}
    assert curated["line"].to_list() == [5]
    kept = curated.row(0, named=True)
    assert kept["chosen"][1]["content"] == kept["rejected"][1]["content"] == "Please write to me at [EMAIL] about it"
    assert kept["rejected"][2]["content"] == "Mail [EMAIL]" and "@" not in kept["text"]
    assert json.loads(kept["label"]) == {"chosen": '{"c": "refund"}', "rejected": "Mail [EMAIL]"}
    forgotten = rejected.filter(pl.col("rule") == "forget")
    assert forgotten.select("text", "label", "chosen", "rejected").null_count().row(0) == (1, 1, 1, 1)
    assert stats["rejected_by_rule"]["prompt_mismatch"] == 1 and stats["rejected_by_rule"]["same_answers"] == 1


@pytest.mark.parametrize("fmt, rejected, needle", [
    ("preference", None, "rejected_field: set it"),
    ("prompt_completion", "rejected", "rejected_field: must be null"),
])
def test_bad_preference_sources_are_user_errors(fmt, rejected, needle):
    with pytest.raises(UserError, match=needle):
        chat.check_source(source("s", "*", "chosen", rejected, fmt), "jsonl", "data.sources[0]")
