"""Offline PII detection: regular expressions find candidates, maintained validators confirm them.

Types (TYPES, in detection order: specific before generic):
  email          an address with a domain; file names such as icon@2x.png are not
  iban           python-stdnum: the country exists, the length and layout are that country's, mod 97
                 (not the national bank codes: stdnum's bank lists lag behind the banks)
  card           a payment card: Luhn (python-stdnum), a card network's number range and length,
                 written as cards are (no separators, groups of four, or 4-6-5 / 4-6-4)
  national_id    national identity and tax numbers of several countries (NATIONAL_IDS; which ones:
                 curate.pii.national_ids), each confirmed by its python-stdnum module
  date_of_birth  a full date after "date of birth", "DOB", "born (on)" or "birthday", that exists
  ip             IPv4 and IPv6 addresses (ipaddress), not version numbers
  phone          phonenumbers: a valid number of its country (international format, or national
                 format of one of the source's regions: curate.pii.regions, or the source's own
                 data.sources[].pii_regions)

Not taken for PII: dates and times (`2024-01-15 10:30`, `Date: 2023 05 17 2023`), numbers after
order / tracking / SKU / invoice / ISBN / version words or `#`, prices, bare digit runs without a
`+` or separators, and numbers whose checksum or range fails. `redact` replaces each confirmed span
with a typed placeholder such as [EMAIL].
"""

from __future__ import annotations

import datetime
import functools
import importlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

TYPES = ("email", "iban", "card", "national_id", "date_of_birth", "ip", "phone")

# ---- candidates ----------------------------------------------------------------------------------

MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
YEAR = r"(?:19|20)\d\d"
DAY = r"(?:0?[1-9]|[12]\d|3[01])"
MON = r"(?:0?[1-9]|1[0-2])"
# A numeric date at the start of a phone candidate: the candidate is a date, not a phone.
NUMERIC_DATE = (
    rf"(?:{YEAR}([-./ ]){MON}\1{DAY}|{DAY}([-./ ]){MON}\2{YEAR}|{MON}([-./ ]){DAY}\3{YEAR})(?!\d)"
)
DOB_KEY = r"(?:date\s+of\s+birth|birth\s*date|birthday|d\.?o\.?b\.?|born(?:\s+on)?)"
DOB_DATE = (
    rf"{YEAR}[-./]\d{{1,2}}[-./]\d{{1,2}}|\d{{1,2}}[-./]\d{{1,2}}[-./](?:{YEAR}|\d\d)"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH},?\s+{YEAR}|{MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{YEAR}"
)

PATTERNS = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "card": re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    "date_of_birth": re.compile(
        rf"(?i)(?<!\w){DOB_KEY}(?!\w)[\s:=,-]*(?:(?:is|was|on|the)\s+)*(?P<date>{DOB_DATE})(?!\w|[/.-]\d)"
    ),
    "ip": re.compile(
        r"(?<![\w.])(?<!\w/)(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"  # not Chrome/120.0.0.0
        r"|(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])"
    ),
    # A `+` and digits, or digit groups split by single spaces, dots or dashes, with an optional
    # (area code); not inside a longer number, a date, a price, a path or an id (the look-arounds).
    "phone": re.compile(
        rf"(?<![\w+#$€£¥@])(?<!\d[ .\-/:,])(?!{NUMERIC_DATE})"
        r"(?:\+\d{7,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,6}(?:[ .-]\d{1,8}){0,5})"
        r"(?![\w@]|[.:,/-]?\d)"
    ),
}

# National ids: stdnum module -> (candidate pattern, the necessary part of it that polars prefilters
# with). Only numbers with a distinctive written shape and a check digit or strict structure: a bare
# run of digits (NL BSN, DE Steuer-IdNr, PL PESEL, UK NHS, CA SIN) would pass its checksum for 1 in
# 10 order numbers.
NATIONAL_IDS = {
    "us.ssn": (r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", r"\d{3}-\d{2}-\d{4}"),
    "us.itin": (r"(?<![\w-])9\d{2}-\d{2}-\d{4}(?![\w-])", r"9\d{2}-\d{2}-\d{4}"),
    "es.dni": (r"(?<![\w-])\d{8}-?[A-Z](?![\w-])", r"\d{8}-?[A-Z]"),
    "es.nie": (r"(?<![\w-])[XYZ]-?\d{7}-?[A-Z](?![\w-])", r"[XYZ]-?\d{7}-?[A-Z]"),
    "it.codicefiscale": (
        r"(?<!\w)[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z](?!\w)",
        r"[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T]",
    ),
    "fr.nir": (
        r"(?<![\w-])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w-])",
        r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}",
    ),
    "br.cpf": (r"(?<![\w.-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w.-])", r"\d{3}\.\d{3}\.\d{3}-\d{2}"),
    "se.personnummer": (r"(?<![\w+-])(?:\d\d)?\d{6}[-+]\d{4}(?![\w-])", r"\d{6}[-+]\d{4}"),
    "fi.hetu": (r"(?<![\w-])\d{6}[-+A-FU-Y]\d{3}[0-9A-Y](?![\w-])", r"\d{6}[-+A-FU-Y]\d{3}"),
    "ch.ssn": (r"(?<![\w.])756\.\d{4}\.\d{4}\.\d{2}(?![\w.])", r"756\.\d{4}\.\d{4}\.\d{2}"),
    "be.nn": (
        r"(?<![\w.-])\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}(?![\w.-])",
        r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}",
    ),
    "mx.curp": (r"(?<!\w)[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z0-9]\d(?!\w)", r"[A-Z]{4}\d{6}[HMX]"),
    "kr.rrn": (r"(?<![\w-])\d{6}-\d{7}(?![\w-])", r"\d{6}-\d{7}"),
}
ID_PATTERNS = {name: re.compile(pattern) for name, (pattern, _) in NATIONAL_IDS.items()}

# A cheap first pass per type (polars runs them over all rows): a necessary condition of each
# pattern, without its look-arounds. `find` tries a type's pattern only on the rows its prefilter
# matched.
PREFILTERS = {
    "email": "@",
    "card": r"\d(?:[ -]?\d){12}",
    "iban": r"[A-Z]{2}\d{2}",
    "date_of_birth": r"(?i)birth|born|d\.?o\.?b",
    "ip": r"(?:\d{1,3}\.){3}\d{1,3}|::|(?:[0-9A-Fa-f]{1,4}:){7}",
    "phone": r"\d[ .\-]\(?\d|\d\)[ .\-]?\d|\+\d",
}

# ---- context: words before a candidate that say what it is ---------------------------------------

NOT_PII = {
    "ids": "order orders invoice inv ref reference ticket tracking track shipment parcel package "
    "sku item part serial model isbn issn doi po batch lot imei zip postcode postal case",
    "version": "version ver v build release firmware fw rev revision patch update updated upgrade "
    "upgraded section chapter oid",
    "money": "price total cost amount balance usd eur gbp chf jpy",
    "other_pii": "ssn itin tin dni nie nif cpf personnummer hetu ahv avs rrn curp nir iban card "
    "visa",
}
IS_PII = {
    "phone": "phone tel telephone call mobile cell fax whatsapp sms text ring contact reach dial "
    "hotline ph mob",
    "card": "card visa mastercard amex credit debit cc pay paid charged",
    "national_id": "ssn social security id itin tin dni nie nif cpf codice fiscale personnummer "
    "hetu ahv avs nir insee curp rrn national",
    "ip": "ip address addr host server from login connected logged",
}
CONTEXT_OF = {
    "card": ("ids",),
    "national_id": ("ids",),
    "ip": ("version",),
    "phone": ("ids", "version", "money", "other_pii"),
}
BEFORE = 40  # characters before a candidate that its context words are read from
NEAREST = 3  # the words nearest a candidate that say what it is
NOT_PII_WORDS = {
    k: frozenset(" ".join(NOT_PII[c] for c in cs).split()) for k, cs in CONTEXT_OF.items()
}
IS_PII_WORDS = {kind: frozenset(names.split()) for kind, names in IS_PII.items()}
TOKEN = re.compile(r"[^\W\d_]+")
# `order #`, `#2024 15 01`: a number of something, not a phone
NUMBER_SIGN = re.compile(r"[#№]\s*$")


def other_thing(kind: str, text: str, start: int) -> bool:
    """Of the few words right before the candidate, the nearest telling one says it is something
    else (an order number, a version, a price): `order number 123-456-7890`, but not `order 12:
    call 415 555 0100`; or (phone) a number sign is right before it."""
    if kind not in NOT_PII_WORDS:
        return False
    before = text[max(0, start - BEFORE) : start].lower()
    if kind == "phone" and NUMBER_SIGN.search(before):
        return True
    for word in reversed(TOKEN.findall(before)[-NEAREST:]):
        if word in IS_PII_WORDS[kind]:
            return False
        if word in NOT_PII_WORDS[kind]:
            return True
    return False


# ---- validators ----------------------------------------------------------------------------------

# Card networks (first digits from, to: lengths): Visa, Mastercard, Amex, Discover, Diners, JCB,
# UnionPay, Maestro, Mir, RuPay. A Luhn-valid number outside them is an account, order or device
# number.
CARD_RANGES = [
    ("4", "4", (13, 16, 19)),
    ("51", "55", (16,)),
    ("2221", "2720", (16,)),
    ("34", "34", (15,)),
    ("37", "37", (15,)),
    ("6011", "6011", range(16, 20)),
    ("644", "659", range(16, 20)),
    ("300", "305", range(14, 20)),
    ("36", "36", range(14, 20)),
    ("38", "39", range(14, 20)),
    ("3528", "3589", range(16, 20)),
    ("62", "62", range(16, 20)),
    ("50", "50", range(13, 20)),
    ("56", "58", range(13, 20)),
    ("6304", "6304", range(13, 20)),
    ("6759", "6763", range(13, 20)),
    ("2200", "2204", range(16, 20)),
    ("60", "60", (16,)),
    ("508", "508", (16,)),
]
EMAIL_NOT_TLD = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic"}


def luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    in_range = any(
        lo <= digits[: len(lo)] <= hi and len(digits) in lengths for lo, hi, lengths in CARD_RANGES
    )
    return in_range and card_layout(match) and luhn_ok(digits)


def card_layout(match: str) -> bool:
    """Written as cards are: no separators, groups of four (the last may be shorter), or 4-6-5 /
    4-6-4 (American Express, Diners), with one kind of separator."""
    groups = [len(g) for g in re.split(r"[ -]", match)]
    if len(groups) == 1:
        return True
    if len(set(re.findall(r"[ -]", match))) > 1:
        return False
    return (
        groups[:-1] == [4] * (len(groups) - 1)
        and groups[-1] <= 4
        or groups in ([4, 6, 5], [4, 6, 4])
    )


def iban_ok(candidate: str) -> bool:
    from stdnum import iban

    return iban.is_valid(candidate, check_country=False)


def iban_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The candidate, or it without trailing space-separated chunks (a word after the IBAN), when
    valid."""
    while True:
        if iban_ok(text[start:end]):
            return start, end
        cut = text.rfind(" ", start, end)
        if cut < 0 or cut - start < 15:
            return None
        end = cut


def national_id_ok(name: str, candidate: str) -> bool:
    module = importlib.import_module(f"stdnum.{name}")
    return module.is_valid(candidate)


MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()


def date_exists(date: str) -> bool:
    """The date of birth names a real day: year-month-day, day.month.year or month/day/year."""
    parts = re.findall(r"\d+|[A-Za-z]+", date)
    numbers = [int(p) for p in parts if p.isdigit()]
    named = [p for p in parts if p.isalpha() and re.fullmatch(MONTH, p.lower())]
    if named:
        day, year = sorted(numbers)
        readings = [(year, MONTHS.index(named[0][:3].lower()) + 1, day)]
    elif numbers[0] > 31:
        readings = [tuple(numbers)]
    else:
        a, b, y = numbers
        y = y if y > 99 else 1900 + y
        readings = [(y, b, a), (y, a, b)]
    return any(valid_day(*r) for r in readings)


def valid_day(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return 1900 <= year <= 2099


def ip_ok(candidate: str) -> bool:
    """A valid address; IPv6 in full (8 groups) or shortened with `::`, with two groups at least
    (not a time such as 10:30:15, nor `::` alone)."""
    if ":" in candidate:
        groups = [g for g in candidate.split(":") if g]
        if len(groups) < 2 or ("::" not in candidate and len(groups) != 8):
            return False
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1 << 16)  # a support line or a shop's number recurs in many texts
def phone_ok(candidate: str, regions: tuple[str, ...]) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 17:
        return False
    if not candidate.startswith("+") and not re.search(r"[ .\-()]", candidate):
        return False  # a bare run of digits: an order or account number as often as a phone
    if isbn_like(digits):
        return False  # ISBN-13 (978/979 and its check digit)
    if candidate.startswith("+"):
        return valid_in(candidate, None)
    return any(valid_in(candidate, region) for region in regions)


def valid_in(candidate: str, region: str | None) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def isbn_like(digits: str) -> bool:
    from stdnum import isbn

    return len(digits) == 13 and digits[:3] in ("978", "979") and isbn.is_valid(digits)


# ---- settings: the phone region and the national ids, per source ---------------------------------


@dataclass(frozen=True)
class Settings:
    """What a source's text is read with."""

    regions: tuple[
        str, ...
    ]  # numbers without +country code: valid in one of these (ISO 3166 codes)
    national_ids: tuple[str, ...]  # NATIONAL_IDS keys to look for


def settings(p, sources: Sequence = ()) -> dict[str | None, Settings]:
    """curate.pii (regions, national_ids) and each source's pii_regions: source name -> Settings;
    None: the default (a source without regions of its own)."""
    base = Settings(tuple(p.regions), tuple(p.national_ids))
    by_source: dict[str | None, Settings] = {None: base}
    for s in sources:
        if s.pii_regions is not None:
            by_source[s.name] = Settings(tuple(s.pii_regions), base.national_ids)
    return by_source


def for_source(by_source: dict[str | None, Settings], source: str | None) -> Settings:
    return by_source.get(source, by_source[None])


def settings_of_rows(
    df: pl.DataFrame, rows: list[int], p, sources: Sequence = ()
) -> dict[int, Settings]:
    """Row index -> the Settings of its source (df's `source` column)."""
    by_source = settings(p, sources)
    names = df["source"].gather(rows).to_list() if "source" in df.columns else [None] * len(rows)
    return {i: for_source(by_source, name) for i, name in zip(rows, names)}


def check(p, sources: Sequence = ()) -> None:
    """One UserError for an unknown or missing region, or an unknown national id."""
    import phonenumbers

    from tunebuild.errors import UserError

    lists = [("curate.pii.regions", p.regions)] + [
        (f"data.sources[{i}].pii_regions", s.pii_regions)
        for i, s in enumerate(sources)
        if s.pii_regions is not None
    ]
    for key, regions in lists:
        if not regions:
            raise UserError(f"params.yaml: {key}: empty; list one region at least (e.g. [US])")
        for j, region in enumerate(regions):
            if region not in phonenumbers.SUPPORTED_REGIONS:
                raise UserError(
                    f"params.yaml: {key}[{j}]: '{region}' is not a region phonenumbers knows (an "
                    "ISO 3166 country code in capitals, e.g. US, GB, DE)"
                )
    for i, name in enumerate(p.national_ids):
        if name not in NATIONAL_IDS:
            raise UserError(
                f"params.yaml: curate.pii.national_ids[{i}]: '{name}' is not one of "
                f"{', '.join(NATIONAL_IDS)}"
            )


DEFAULT = Settings(("US",), tuple(NATIONAL_IDS))

# ---- finding -------------------------------------------------------------------------------------


def confirmed(
    kind: str, text: str, m: re.Match, s: Settings, name: str = ""
) -> tuple[int, int] | None:
    """The span of a candidate the validators confirm (sometimes a part of it), or None."""
    start, end = m.span("date") if kind == "date_of_birth" else m.span()
    if other_thing(kind, text, start):
        return None
    candidate = text[start:end]
    if kind == "email":
        return (start, end) if candidate.rsplit(".", 1)[1].lower() not in EMAIL_NOT_TLD else None
    if kind == "card":
        return (start, end) if card_ok(candidate) else None
    if kind == "iban":
        return iban_span(text, start, end)
    if kind == "national_id":
        return (start, end) if national_id_ok(name, candidate) else None
    if kind == "date_of_birth":
        return (start, end) if date_exists(candidate) else None
    if kind == "ip":
        return (start, end) if ip_ok(candidate) else None
    return (start, end) if phone_ok(candidate, s.regions) else None


# Where a match can be: it holds one of these characters and is at most this many characters from
# one (email: unbounded, so it is searched everywhere).
ANCHORS = {
    "card": ("0123456789", 40),
    "iban": ("0123456789", 70),
    "national_id": ("0123456789", 24),
    "date_of_birth": ("0123456789", 60),
    "ip": ("0123456789:", 40),
    "phone": ("0123456789", 60),
}


def window(text: str, kind: str) -> tuple[int, int]:
    """(pos, endpos) for the patterns' finditer: from `reach` before the first anchor character to
    `reach` after the last, which holds every match (the look-arounds still see the whole text: a
    search from pos looks behind it, and every match ends before endpos). Python's regex engine is
    slow per character, so scanning a long text only around its digits is several times faster.
    ASCII text only (str.find is fast; `\\d` also matches other scripts' digits)."""
    if kind not in ANCHORS or not text.isascii():
        return 0, len(text)
    chars, reach = ANCHORS[kind]
    first = [i for c in chars if (i := text.find(c)) >= 0]
    if not first:
        return 0, 0
    last = max(text.rfind(c) for c in chars)
    return max(0, min(first) - reach), min(len(text), last + reach + 1)


def patterns(kind: str, s: Settings) -> list[tuple[str, re.Pattern]]:
    if kind == "national_id":
        return [(name, ID_PATTERNS[name]) for name in s.national_ids]
    return [("", PATTERNS[kind])]


def find(
    text: str, kinds: Iterable[str] = TYPES, s: Settings = DEFAULT, windowed: bool = True
) -> list[tuple[str, int, int]]:
    """Confirmed, non-overlapping PII spans (type, start, end) of the given types, in text order.
    `windowed=False` searches the whole text (what the windows must equal)."""
    spans: list[tuple[str, int, int]] = []
    for kind in sorted(kinds, key=TYPES.index):
        bounds = window(text, kind) if windowed else (0, len(text))
        for name, pattern in patterns(kind, s):
            for m in pattern.finditer(text, *bounds):
                if overlaps(spans, *m.span()):
                    continue
                span = confirmed(kind, text, m, s, name)
                if span is not None:
                    spans.append((kind, *span))
    return sorted(spans, key=lambda sp: sp[1])


def overlaps(spans: list[tuple[str, int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for _, s, e in spans)


def redact(text: str, spans: list[tuple[str, int, int]], kinds: set[str]) -> str:
    """Replace the spans of the given kinds with [KIND] placeholders."""
    out, last = [], 0
    for kind, start, end in spans:
        if kind in kinds:
            out.append(text[last:start])
            out.append(f"[{kind.upper()}]")
            last = end
    out.append(text[last:])
    return "".join(out)


def prefilters(by_source: dict[str | None, Settings]) -> dict[str, str]:
    """Each type's prefilter; national_id's is the union of the selected ids'."""
    ids = sorted({name for s in by_source.values() for name in s.national_ids})
    national = "|".join(f"(?:{NATIONAL_IDS[name][1]})" for name in ids)
    out = dict(PREFILTERS)
    if national:
        out["national_id"] = national
    return {k: out[k] for k in TYPES if k in out}


def find_all(
    df: pl.DataFrame, by_source: dict[str | None, Settings] | None = None
) -> dict[int, tuple[str, list[tuple[str, int, int]]]]:
    """Row index -> (original text, PII spans), for rows with PII only. `by_source` (settings())
    reads each row with its source's settings (a `source` column); None: DEFAULT for every row.

    Each type's prefilter runs in polars over all rows; its pattern only on the rows that matched.
    """
    by_source = by_source or {None: DEFAULT}
    checks = prefilters(by_source)
    text = pl.col("text").fill_null("")
    source = pl.col("source") if "source" in df.columns else pl.lit(None, pl.String)
    any_type = "|".join(
        f"(?:{pat})" for pat in checks.values()
    )  # one pass over all rows, then per type
    hits = (
        df.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "text", source.alias("_source")
        )
        .filter(text.str.contains(any_type))
        .with_columns(text.str.contains(pat).alias(k) for k, pat in checks.items())
    )
    found = {}
    for i, t, src, *flags in hits.iter_rows():
        spans = find(t, [k for k, hit in zip(checks, flags) if hit], for_source(by_source, src))
        if spans:
            found[i] = (t, spans)
    return found
