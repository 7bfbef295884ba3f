"""Pure parts of audit, trace and forget: forget-list editing, record id checks, findings."""
from __future__ import annotations

import pytest
import yaml

from tunebuild.audit import findings, merged_params
from tunebuild.errors import UserError
from tunebuild.forget import add_to_list
from tunebuild.records import record_id
from tunebuild.trace import which_id

CONF = """\
# my data
name: d   # the name
labels: [a,
         b]
sources: []
forget:   # removed on request
  record_ids: []   # ids
  patterns:
    - "^old$"   # an old one
other: null
"""


def test_add_to_list_keeps_every_other_byte(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(CONF)
    added = add_to_list(path, ["00000000000000aa", "00000000000000aa"], [r"card \d+", "^old$"])
    assert added == (["00000000000000aa"], [r"card \d+"])
    text = path.read_text()
    assert text == CONF.replace('  record_ids: []   # ids\n', '  record_ids:   # ids\n    - "00000000000000aa"\n'
                                ).replace('    - "^old$"   # an old one\n', '    - "^old$"   # an old one\n    - "card \\\\d+"\n')
    assert yaml.safe_load(text)["forget"] == {"record_ids": ["00000000000000aa"], "patterns": ["^old$", r"card \d+"]}
    assert add_to_list(path, ["00000000000000aa"], []) == ([], []) and path.read_text() == text


def test_add_to_list_needs_a_forget_section(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("name: d\n")
    with pytest.raises(UserError, match="no `forget:` mapping"):
        add_to_list(path, ["00000000000000aa"], [])


def test_which_id():
    assert which_id("0123456789abcdef", None) == "0123456789abcdef"
    assert which_id(None, "  Hello   World ") == record_id("hello world")
    for rid, text in (("XYZ", None), (None, None), ("0123456789abcdef", "t")):
        with pytest.raises(UserError):
            which_id(rid, text)


def test_merged_params_marks_values_that_differ_between_stages():
    built = {"a": {"params": {"x": 1, "y": 2}}, "b": {"params": {"x": 1, "y": 3}}}
    assert merged_params(built) == {"x": 1, "y": {"(differs) a": 2, "(differs) b": 3}}


def test_findings_one_per_kind():
    report = {
        "sources": [{"source": "s", "license": "L", "allowed": False, "why": "L is not in the allowlist", "train": 2, "validation": 0, "test": 0}],
        "pii": {"email": {"action": "redact", "in_splits": 1}, "phone": {"action": "keep", "in_splits": 4}},
        "leakage": {"near_duplicates": 1, "overlaps": {"record_id": [{"record_id": "r", "splits": ["test", "train"]}],
                                                       "group": [], "cluster": []}},
        "status": {"stale": {"curate": []}, "lock": []},
        "forget": {"downstream": {"r": ["data/split/train.parquet"]}},
    }
    found = findings(report)
    assert [f["kind"] for f in found] == ["license", "pii", "leakage", "leakage", "stale", "forget"]
    assert "email" in found[1]["message"] and "2 train" in found[0]["message"]
