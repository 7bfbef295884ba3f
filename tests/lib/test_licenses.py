"""SPDX license expressions (tunebuild.licenses): normalised, validated, checked against the
allowlist."""

import polars as pl
import pytest

from tunebuild import licenses
from tunebuild.errors import UserError

ALLOW = [
    "CC-BY-4.0",
    "CC0-1.0",
    "Apache-2.0",
    "GPL-2.0-only",
    "LLVM-exception",
    "LicenseRef-Acme-Internal",
]


@pytest.mark.parametrize(
    "written, normal",
    [
        ("GPL-2.0", "GPL-2.0-only"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("mit or apache-2.0", "MIT OR Apache-2.0"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception"),
        ("LicenseRef-Acme-Internal", "LicenseRef-Acme-Internal"),
        (
            "LicenseRef-MIT-Bootstrap",
            "LicenseRef-MIT-Bootstrap",
        ),  # the user's own reference, not scancode's alias
    ],
)
def test_expressions_are_normalised(written, normal):
    assert licenses.normalise(written) == normal


@pytest.mark.parametrize(
    "expression, allowed, why",
    [
        (
            "MIT OR Apache-2.0",
            True,
            "one branch of the OR is allowed: Apache-2.0 is in the allowlist",
        ),
        ("MIT OR GPL-3.0-only", False, "no branch of the OR is allowed"),
        (
            "Apache-2.0 WITH LLVM-exception",
            True,
            "both Apache-2.0 and LLVM-exception are in the allowlist",
        ),
        (
            "GPL-2.0-only WITH Classpath-exception-2.0",
            False,
            "Classpath-exception-2.0 not in the allowlist",
        ),
        ("CC0-1.0 AND CC-BY-4.0", True, "every part of the AND is allowed"),
        (
            "CC0-1.0 AND MIT",
            False,
            "every part of the AND must be allowed: MIT is not in the allowlist",
        ),
        (
            "GPL-2.0",
            True,
            "GPL-2.0-only is in the allowlist",
        ),  # deprecated id, allowlist holds the current one
        ("MIT", False, "MIT is not in the allowlist"),
    ],
)
def test_verdicts_say_why(expression, allowed, why):
    v = licenses.verdict(expression, ALLOW)
    assert v["allowed"] is allowed and why in v["why"]


def test_the_allowlist_is_normalised_too():
    assert licenses.verdict("GPL-2.0-only", ["GPL-2.0"])["allowed"]
    assert licenses.verdict("Apache-2.0 WITH LLVM-exception", ["Apache-2.0 WITH LLVM-exception"])[
        "allowed"
    ]
    assert not licenses.verdict("Apache-2.0 WITH LLVM-exception", ["Apache-2.0"])["allowed"]


def test_polars_expressions_decide_each_distinct_value():
    df = pl.DataFrame({"license": ["MIT OR Apache-2.0", "MIT", "MIT", None]})
    out = df.select(
        ok=licenses.allowed(pl.col("license"), ALLOW), why=licenses.why(pl.col("license"), ALLOW)
    )
    assert out["ok"].to_list() == [True, False, False, None]
    assert out["why"][1] == "MIT is not in the allowlist"


@pytest.mark.parametrize(
    "expression, message",
    [
        ("Foo-1.0", r"'Foo-1\.0' is not an SPDX license id"),
        ("Apach-2.0", r"did you mean Apache-2\.0\?"),
        ("MIT OR", r"'MIT OR' is not an SPDX license expression"),
        ("MIT WITH Apache-2.0", r"is not an SPDX license expression"),
        ("LLVM-exception", r"is not an SPDX license expression"),
    ],
)
def test_bad_expressions_are_one_clear_error(expression, message):
    with pytest.raises(UserError, match=r"data\.sources\[0\]\.license: .*" + message):
        licenses.check_license(expression, "data.sources[0].license")


def test_allowlist_entries_are_single_licenses():
    licenses.check_allowlist(ALLOW + ["Apache-2.0 WITH LLVM-exception"], "curate.license_allowlist")
    with pytest.raises(
        UserError, match=r"curate\.license_allowlist\[0\]: 'MIT OR Apache-2\.0': list one license"
    ):
        licenses.check_allowlist(["MIT OR Apache-2.0"], "curate.license_allowlist")
    with pytest.raises(
        UserError, match=r"curate\.license_allowlist\[1\]: 'Foo' is not an SPDX license id"
    ):
        licenses.check_allowlist(["MIT", "Foo"], "curate.license_allowlist")
