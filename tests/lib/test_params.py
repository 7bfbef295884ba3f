from dataclasses import dataclass
from pathlib import Path

import pytest

from tunebuild.compose import compose, validate
from tunebuild.errors import UserError
from tunebuild.params import load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    n: int
    names: list[str]


@dataclass
class P:
    inner: Inner


def test_parse_ok():
    assert parse_params(P, {"inner": {"n": 3, "names": ["a"]}}).inner == Inner(3, ["a"])


@pytest.mark.parametrize("section, needle", [
    ({"n": 3, "names": [], "extra": 1}, "inner.extra"),
    ({"n": "three", "names": []}, "inner.n"),
    ({"names": []}, "inner.n"),
    (None, "section 'inner' is missing"),
])
def test_parse_errors_name_the_key(section, needle):
    with pytest.raises(UserError, match=needle.replace(".", r"\.")) as e:
        parse_params(P, {"inner": section})
    assert "tunebuild compose" in str(e.value) or "missing" in str(e.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_params(P, tmp_path / "params.yaml")


def test_compose_matches_committed_params_and_validates():
    text = compose(ROOT / "conf", [])
    assert text == (ROOT / "params.yaml").read_text(encoding="utf-8")
    validate(text, "conf/")


def test_compose_group_and_key_overrides():
    text = compose(ROOT / "conf", ["train=full", "train.lr=0.0002"])
    assert "mode: full" in text and "lr: 0.0002" in text


@pytest.mark.parametrize("override, needle", [("train=nope", "nope"), ("train.lrr=1", "lrr")])
def test_compose_bad_override_is_a_user_error(override, needle):
    with pytest.raises(UserError, match=needle):
        compose(ROOT / "conf", [override])


def test_validate_rejects_unknown_section():
    text = compose(ROOT / "conf", []) + "surprise:\n  a: 1\n"
    with pytest.raises(UserError, match="unknown section 'surprise'"):
        validate(text, "conf/")


def test_target_key_is_refused_anywhere(tmp_path):
    from tunebuild.params import read_params_file

    (tmp_path / "params.yaml").write_text("train:\n  lora:\n    _target_: pathlib.Path.write_text\n")
    with pytest.raises(UserError, match=r"train\.lora\._target_: `_target_` is not allowed"):
        read_params_file(tmp_path / "params.yaml")


@pytest.mark.parametrize("license_id, ok", [("CC-BY-4.0", True), ("Apache-2.0", True), ("LicenseRef-Acme-Internal", True),
                                            ("cc-by-4.0", True), ("MIT OR Apache-2.0", True), ("Proprietary", False)])
def test_licenses_must_be_spdx(license_id, ok):
    from tunebuild.licenses import check_license

    if ok:
        check_license(license_id, "data.sources[0].license")
    else:
        with pytest.raises(UserError, match=r"data\.sources\[0\]\.license: .* is not an SPDX license id"):
            check_license(license_id, "data.sources[0].license")
