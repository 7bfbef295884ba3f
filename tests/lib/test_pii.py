"""PII detection (tunebuild.pii): validated candidates, the issue's false positives, the labelled
corpus's precision and recall, per-source regions, and windowed search equal to a whole-text
search."""

import json
import random
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tunebuild import pii
from tunebuild.errors import UserError
from tunebuild.params import PiiParams, SourceParams

ROOT = Path(__file__).resolve().parents[2]
US = pii.Settings(("US",), tuple(pii.NATIONAL_IDS))


def found(text: str, s: pii.Settings = US) -> list[tuple[str, str]]:
    return [(kind, text[a:b]) for kind, a, b in pii.find(text, pii.TYPES, s)]


# What the code before python-stdnum and phonenumbers took for PII (issue 20): each is a test that
# failed then.
@pytest.mark.parametrize(
    "text",
    [
        "Meeting at 2024-01-15 10:30 in room B",  # was redacted to `Meeting at [PHONE]:30`
        "Date: 2023 05 17 2023",
        "order #123-456-789 shipped",
        "SKU 12-345-6789 is out of stock",
        "my SSN is 000-12-3456",
        "my SSN is 666-12-3456",
        "my SSN is 912-12-3456",  # area 000, 666, 9xx
        "my SSN is 123-00-4567",
        "my SSN is 123-45-0000",  # group 00, serial 0000
        "my SSN is 078-05-1120",  # the wallet specimen
        "IBAN XX57WEST12345698765432 please",  # mod 97 right, no country XX
        "IBAN DE54 3704 0044 0532 0130 001 please",  # mod 97 right, 23 characters
    ],
)
def test_the_issues_false_positives_are_not_pii(text):
    assert found(text) == []
    assert pii.find_all(pl.DataFrame({"text": [text]})) == {}


def test_the_time_after_a_date_is_left_alone():
    text = "Meeting at 2024-01-15 10:30"
    assert pii.redact(text, pii.find(text), set(pii.TYPES)) == text


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("call +1 415 555 0100 now", "phone", "+1 415 555 0100"),
        ("my SSN is 536-22-1234", "national_id", "536-22-1234"),
        ("DNI: 54362315K", "national_id", "54362315K"),
        ("codice fiscale RCCMNL83S18D969H", "national_id", "RCCMNL83S18D969H"),
        ("CPF 390.533.447-05", "national_id", "390.533.447-05"),
        ("IBAN DE89 3704 0044 0532 0130 00 EUR", "iban", "DE89 3704 0044 0532 0130 00"),
        ("card 4111 1111 1111 1111", "card", "4111 1111 1111 1111"),
        ("DOB: 1985-03-12", "date_of_birth", "1985-03-12"),
        ("born on 3 March 1985", "date_of_birth", "3 March 1985"),
        ("from 2001:db8::1", "ip", "2001:db8::1"),
    ],
)
def test_validated_pii_is_found(text, kind, value):
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "Upgraded to version 1.2.3.4",
        "Chrome/120.0.0.0 Safari",
        "icon@2x.png",
        "card 4111 1111 1111 1112",
        "date of birth 31/02/1985",
        "at 10:30:15 the job ran",
        "ISBN 978-3-16-148410-0",
        "Price: $1 299.00",
        "tracking 9400 1000 0000 0000 0000 00",
    ],
)
def test_look_alikes_are_not_pii(text):
    assert found(text) == []


def test_national_format_phones_need_one_of_the_sources_regions():
    text = "ring 020 7946 0958 or (415) 555-0100"
    assert found(text, pii.Settings(("US",), ())) == [("phone", "(415) 555-0100")]
    assert found(text, pii.Settings(("GB",), ())) == [("phone", "020 7946 0958")]
    both = pii.Settings(("US", "GB"), ())
    assert found(text, both) == [("phone", "020 7946 0958"), ("phone", "(415) 555-0100")]
    intl = "ring +44 20 7946 0958"
    assert found(intl, pii.Settings(("US",), ())) == [("phone", "+44 20 7946 0958")]


@pytest.mark.parametrize(
    "text, phone",
    [
        ("on my card? My number is +44 20 7946 0400", "+44 20 7946 0400"),  # card: further back
        ("for my order. My number is +49 30 90189100", "+49 30 90189100"),
        ("Order 12345, call 020 7946 0958", "020 7946 0958"),
    ],
)
def test_only_the_nearest_words_say_a_number_is_something_else(text, phone):
    assert found(text, pii.Settings(("GB",), ())) == [("phone", phone)]


def test_only_the_chosen_national_ids_are_looked_for():
    assert found("DNI: 54362315K", pii.Settings(("US",), ("us.ssn",))) == []


def source(name: str, regions: list[str] | None) -> SourceParams:
    return SourceParams(
        name=name,
        format="text",
        files="*",
        license="CC0-1.0",
        text_field="t",
        label_field="l",
        rejected_field=None,
        group_field=None,
        encoding="utf-8",
        delimiter=",",
        pii_regions=regions,
    )


PII = PiiParams(
    email="redact",
    phone="redact",
    card="reject",
    iban="reject",
    ip="redact",
    national_id="reject",
    date_of_birth="redact",
    regions=["US"],
    national_ids=["us.ssn"],
)


def test_find_all_reads_each_row_with_its_sources_regions():
    by_source = pii.settings(PII, [source("uk", ["GB"]), source("us", None)])
    assert by_source["uk"].regions == ("GB",) and by_source[None].regions == ("US",)
    assert "us" not in by_source
    df = pl.DataFrame(
        {
            "text": ["ring 020 7946 0958", "ring 020 7946 0958", "call (415) 555-0100"],
            "source": ["uk", "us", "us"],
        }
    )
    hits = pii.find_all(df, by_source)
    assert sorted(hits) == [0, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"regions": ["US", "UK"]}, r"curate\.pii\.regions\[1\]: 'UK' is not a region"),
        ({"regions": []}, r"curate\.pii\.regions: empty"),
        (
            {"national_ids": ["us.ssn", "de.idnr"]},
            r"curate\.pii\.national_ids\[1\]: 'de\.idnr' is not one of",
        ),
    ],
)
def test_unknown_regions_and_ids_are_one_clear_error(change, message):
    import dataclasses

    with pytest.raises(UserError, match=message):
        pii.check(dataclasses.replace(PII, **change), [])
    with pytest.raises(UserError, match=r"data\.sources\[0\]\.pii_regions\[0\]: 'XX'"):
        pii.check(PII, [source("s", ["XX"])])


def test_the_corpus_meets_the_targets_per_type():
    corpus = [
        json.loads(line) for line in (ROOT / "tests/data/pii_corpus.jsonl").read_text().splitlines()
    ]
    assert len(corpus) >= 300
    assert len({r["region"] for r in corpus if any(k == "phone" for k, _ in r["pii"])}) >= 10
    proc = subprocess.run(
        [sys.executable, "bench/bench_pii.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    per_type = {x["type"]: x for x in lines if "type" in x}
    assert set(per_type) == set(pii.TYPES)
    for kind, x in per_type.items():
        assert x["true"] > 0 and x["precision"] >= 0.98 and x["recall"] >= 0.95, x


PIECES = [
    "4111 1111 1111 1111",
    "+1 415 555 0100",
    "536-22-1234",
    "203.0.113.7",
    "DE89 3704 0044 0532 0130 00",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
    "a.b@example.com",
    "(020) 7946 0958",
    "12-34",
    "order 123456",
    "٣٤٥ ٦٧٨ ٩٠١٢",
    "DOB: 1985-03-12",
    "born on 3 March 1985",
    "RCCMNL83S18D969H",
    "2024-01-15 10:30",
]
ALPHABET = "abcXYZ DE 0123456789 -.:+()@_\n٣"


@pytest.mark.parametrize("seed", range(3))
def test_windowed_search_finds_what_a_whole_text_search_finds(seed):
    rng = random.Random(seed)
    for _ in range(600):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.3:
                parts.append(rng.choice(PIECES))
            elif r < 0.7:
                parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30))))
            else:
                parts.append("word " * rng.randint(0, 40))
        text = "".join(parts)
        assert pii.find(text) == pii.find(text, windowed=False), text


def test_window_is_around_the_digits():
    text = "x" * 500 + " card 4111 1111 1111 1111 " + "y" * 500
    pos, endpos = pii.window(text, "card")
    assert pos == 506 - 40 and endpos == 524 + 40 + 1
    assert pii.window("no digits at all", "phone") == (0, 0)
    assert pii.window("mail a@b.example", "email") == (0, 16)
