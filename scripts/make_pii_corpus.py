"""Writes tests/data/pii_corpus.jsonl: labelled PII candidates, true and false, in short sentences.

Each line: {"text", "region" (the source's phone region), "pii": [[type, exact substring], ...]
(empty for a false candidate), "about": what the candidate is}. True values are built by each
standard's own rule (check digits computed here, not by the validators tunebuild uses), taken from
published test and example numbers (card networks' test numbers, the IBAN registry's examples,
libphonenumber's example numbers, fiction ranges), or written in real formats; false ones are the
look-alikes that text is full of (dates, times, versions, order and tracking numbers, SKUs, ISBNs,
prices, broken checksums). Deterministic: `python scripts/make_pii_corpus.py` rewrites the same
file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests/data/pii_corpus.jsonl"


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def with_luhn(body: str) -> str:
    return body + luhn_digit(body)


def group(s: str, sizes: list[int], sep: str = " ") -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i : i + n])
        i += n
    return sep.join(p for p in out if p)


# ---- e-mail --------------------------------------------------------------------------------------

EMAILS = [
    "jane.doe@example.com",
    "j.smith+billing@mail.example.org",
    "carlos_ruiz@empresa.es",
    "a.b@sub.domain.co.uk",
    "support-team@acme-corp.io",
    "li.wei@university.edu.cn",
    "m.rossi@azienda.it",
    "x9@x9.de",
    "firstname.lastname@company.com.au",
    "olga.ivanova@yandex.ru",
    "priya.k@startup.in",
    "info@bakery.fr",
    "user%dept@relay.example.net",
    "anna-lena.mueller@web.de",
    "t.nguyen@outlook.com",
    "k.tanaka@example.jp",
    "JOHN.DOE@EXAMPLE.COM",
    "ceo@tiny.ly",
    "noreply@notifications.example.com",
    "maria.silva@empresa.com.br",
]
EMAIL_TEMPLATES = [
    "Please write to {} about the refund.",
    "my email is {}",
    "Contact: {}",
    "cc {} on the thread",
    "sent from {} yesterday",
    "{} never got the invoice",
]
NOT_EMAILS = [
    ("Use the icon@2x.png asset for retina screens.", "retina image file name"),
    ("The logo@3x.jpg file is too big.", "image file name"),
    ("Follow us @acmesupport for updates.", "social handle"),
    ("Mail me at jane at example dot com", "obfuscated address, no @"),
    ("ssh admin@localhost to debug", "no top-level domain"),
    ("The meeting @ 10 am is moved.", "at sign as a word"),
    ("price is 3@5.00 each", "at sign in a price"),
    ("git clone git@github", "no domain suffix"),
    ("Rate: 5 units @ $20", "at sign in a rate"),
    ("sprite@2x.webp is missing", "image file name"),
    ("user@host is not an address", "no top-level domain"),
    ("send to team@", "at sign at the end"),
]

# ---- cards ---------------------------------------------------------------------------------------

TEST_CARDS = [
    "4111 1111 1111 1111",
    "4012 8888 8888 1881",
    "4222222222222",
    "5555 5555 5555 4444",
    "5105-1051-0510-5100",
    "2223 0031 2200 3222",
    "3782 822463 10005",
    "371449635398431",
    "6011 1111 1111 1117",
    "6011 0009 9013 9424",
    "3056 930902 5904",
    "3852 0000 0232 37",
    "3530 1113 3330 0000",
    "3566 0020 2036 0505",
    "6200 0000 0000 0005",
    "4000056655665556",
]
CARD_PREFIXES = [
    ("4", 16),
    ("4", 19),
    ("51", 16),
    ("54", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("36", 14),
    ("3589", 16),
    ("62", 19),
]
CARD_TEMPLATES = [
    "charged to card {} twice",
    "my visa {} was declined",
    "Card number: {}",
    "paid with {} on Monday",
    "{} expired last month",
]


def cards(rng: random.Random) -> list[str]:
    made = []
    for prefix, length in CARD_PREFIXES:
        body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
        number = with_luhn(body)
        made.append(group(number, [4, 4, 4, 4, 3]) if length in (16, 19) else number)
    return made


def not_cards(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for prefix in (
        "1",
        "7",
        "8",
        "9",
        "0",
    ):  # Luhn-valid, but no card network uses these first digits
        body = prefix + "".join(rng.choice("0123456789") for _ in range(14))
        out.append(
            (
                f"Order {group(with_luhn(body), [4, 4, 4, 4])} is on its way",
                "Luhn-valid order number, no network",
            )
        )
    for card in TEST_CARDS[:6]:  # a broken check digit
        digits = card.replace(" ", "").replace("-", "")
        broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        out.append((f"card {broken} was rejected at checkout", "card shape, Luhn fails"))
    out += [
        ("IMEI 490154203237518 on the box", "IMEI (Luhn, 15 digits)"),
        ("device IMEI 356938035643809 blocked", "IMEI (Luhn, 15 digits)"),
        ("tracking 9400 1112 0268 9900 4411 22", "USPS tracking number"),
        ("invoice 4111 2222 3333 4444 paid", "invoice number after the word invoice"),
        ("serial 5105 1051 0510 5100 on the router", "serial number after the word serial"),
        ("Account 1800 5550 1990 1234 closed", "account number, no card network"),
    ]
    return out


# ---- IBAN ----------------------------------------------------------------------------------------

IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "GB33BUKB20201555555555",
    "FR14 2004 1010 0505 0001 3M02 606",
    "ES91 2100 0418 4502 0005 1332",
    "IT60 X054 2811 1010 0000 0123 456",
    "NL91 ABNA 0417 1643 00",
    "BE68 5390 0754 7034",
    "CH93 0076 2011 6238 5295 7",
    "AT61 1904 3002 3457 3201",
    "SE45 5000 0000 0583 9825 7466",
    "NO93 8601 1117 947",
    "DK50 0040 0440 1162 43",
    "PL61 1090 1014 0000 0712 1981 2874",
    "PT50 0002 0123 1234 5678 9015 4",
    "IE29 AIBK 9311 5212 3456 78",
    "FI21 1234 5600 0007 85",
    "LU28 0019 4006 4475 0000",
    "GR16 0110 1250 0000 0001 2300 695",
    "SA03 8000 0000 6080 1016 7519",
    "DE75512108001245126199",
]
IBAN_TEMPLATES = [
    "Please refund to IBAN {}",
    "my account {} was debited",
    "IBAN: {}",
    "transfer it to {} today",
]


def iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def not_ibans() -> list[tuple[str, str]]:
    bad_country = "XX" + iban_check("XX", "WEST12345698765432") + "WEST12345698765432"
    return [
        (f"IBAN {bad_country} please", "mod 97 right, but no country XX"),
        ("IBAN XX57WEST12345698765432 please", "no country XX"),
        (
            "IBAN DE54 3704 0044 0532 0130 001 please",
            "mod 97 right, 23 characters: German IBANs have 22",
        ),
        (
            f"IBAN DE{iban_check('DE', '37040044053201300')}37040044053201300 please",
            "mod 97 right, 21 characters: German IBANs have 22",
        ),
        ("IBAN DE88 3704 0044 0532 0130 00 please", "check digits wrong"),
        ("IBAN GB82 WEST 1234 5698 7654 33 please", "mod 97 fails"),
        ("IBAN FR14 2004 1010 0505 0001 3M02 607 please", "mod 97 fails"),
        ("IBAN NL91 ABNA 0417 1643 01 please", "mod 97 fails"),
        (
            f"IBAN ZZ{iban_check('ZZ', '12345678901234')}12345678901234 please",
            "mod 97 right, no country ZZ",
        ),
        (
            f"IBAN NL{iban_check('NL', '1234567890123456')}1234567890123456 please",
            "mod 97 right, Dutch BBAN must start with four letters",
        ),
        ("Model AB12 CDEF 3456 7890 12 ships soon", "model code in IBAN shape"),
        ("code US12 3456 7890 1234 5 applied", "promo code in IBAN shape, no IBANs in US"),
        ("IBAN BE68 5390 0754 7035 please", "mod 97 fails"),
        ("IBAN CH93 0076 2011 6238 5295 please", "20 characters: Swiss IBANs have 21"),
        ("Part NO93 8601 1117 948 replaced", "mod 97 fails"),
    ]


# ---- national ids --------------------------------------------------------------------------------


def ssn(rng: random.Random) -> str:
    while True:
        area, grp, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        value = f"{area:03d}-{grp:02d}-{serial:04d}"
        if area != 666 and value.replace("-", "") not in ("078051120", "457555462", "219099999"):
            return value


def itin(rng: random.Random) -> str:
    grp = rng.choice([*range(70, 89), 90, 91, 92, *range(94, 100)])
    return f"9{rng.randint(0, 99):02d}-{grp:02d}-{rng.randint(0, 9999):04d}"


DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni(rng: random.Random) -> str:
    n = rng.randint(10_000_000, 99_999_999)
    return f"{n}{DNI_LETTERS[n % 23]}"


def nie(rng: random.Random) -> str:
    first = rng.choice("XYZ")
    n = rng.randint(0, 9_999_999)
    return f"{first}{n:07d}{DNI_LETTERS[int(str('XYZ'.index(first)) + f'{n:07d}') % 23]}"


def cpf(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(9)]
    for n in (10, 11):
        r = sum(x * w for x, w in zip(d, range(n, 1, -1))) % 11
        d.append(0 if r < 2 else 11 - r)
    s = "".join(map(str, d))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


def birth(rng: random.Random, start: int = 1940, end: int = 1999) -> tuple[int, int, int]:
    return rng.randint(start, end), rng.randint(1, 12), rng.randint(1, 28)


def hetu(rng: random.Random) -> str:
    y, m, d = birth(rng)
    n = rng.randint(2, 899)
    return (
        f"{d:02d}{m:02d}{y % 100:02d}-{n:03d}"
        + "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(f"{d:02d}{m:02d}{y % 100:02d}{n:03d}") % 31]
    )


def personnummer(rng: random.Random) -> str:
    y, m, d = birth(rng)
    body = f"{y % 100:02d}{m:02d}{d:02d}{rng.randint(0, 999):03d}"
    return f"{body[:6]}-{body[6:]}{luhn_digit(body)}"


def ahv(rng: random.Random) -> str:
    body = "756" + "".join(rng.choice("0123456789") for _ in range(9))
    check = -sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10
    s = body + str(check)
    return f"{s[:3]}.{s[3:7]}.{s[7:11]}.{s[11:]}"


def belgian_nn(rng: random.Random) -> str:
    y, m, d = birth(rng)
    n = rng.randint(1, 997)
    body = f"{y % 100:02d}{m:02d}{d:02d}{n:03d}"
    check = 97 - int(body) % 97
    return f"{body[:2]}.{body[2:4]}.{body[4:6]}-{body[6:]}.{check:02d}"


def korean_rrn(rng: random.Random) -> str:
    y, m, d = birth(rng)
    place = f"{rng.randint(0, 8):d}{rng.randint(0, 9999):04d}"
    body = f"{y % 100:02d}{m:02d}{d:02d}{rng.choice('12')}{place}"
    check = (
        11 - sum(int(c) * w for c, w in zip(body, [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5])) % 11
    ) % 10
    return f"{body[:6]}-{body[6:]}{check}"


def nir(rng: random.Random) -> str:
    y, m, _ = birth(rng)
    body = (
        f"{rng.choice('12')}{y % 100:02d}{m:02d}{rng.choice([1, 13, 33, 59, 69, 75, 92, 95]):02d}"
        f"{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
    )
    return group(body + f"{97 - int(body) % 97:02d}", [1, 2, 2, 2, 3, 3, 2])


CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            2,
            4,
            18,
            20,
            11,
            3,
            6,
            8,
            12,
            14,
            16,
            10,
            22,
            25,
            24,
            23,
        ],
    )
)


def codice_fiscale(rng: random.Random) -> str:
    y, m, d = birth(rng)
    letters = "BCDFGLMNPRSTVZ"
    body = (
        "".join(rng.choice(letters) for _ in range(3))
        + "".join(rng.choice(letters) for _ in range(3))
        + f"{y % 100:02d}"
        + "ABCDEHLMPRST"[m - 1]
        + f"{d + rng.choice([0, 40]):02d}"
        + rng.choice(["H501", "F205", "L219", "G273", "A662"])
    )
    total = sum(
        CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65)
        for i, c in enumerate(body)
    )
    return body + chr(65 + total % 26)


CURP_CHARS = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ"


def curp(rng: random.Random) -> str:
    y, m, d = birth(rng)
    body = (
        rng.choice("GHLMPR")
        + rng.choice("AEIOU")
        + rng.choice("GHLMPR")
        + rng.choice("ACDJLMR")
        + f"{y % 100:02d}{m:02d}{d:02d}"
        + rng.choice("HM")
        + rng.choice(["DF", "JC", "NL", "PL", "VZ", "YN"])
        + "".join(rng.choice("BCDFGLMNPRSTVZ") for _ in range(3))
        + "0"
    )
    check = (10 - sum(CURP_CHARS.index(c) * (18 - i) for i, c in enumerate(body)) % 10) % 10
    return body + str(check)


# (stdnum module, maker, sentence); the US numbers have no check digit: their false ones are in
# not_national_ids
NATIONAL = [
    ("us.ssn", ssn, "my SSN is {}"),
    ("us.itin", itin, "ITIN {} on the form"),
    ("es.dni", dni, "DNI: {}"),
    ("es.nie", nie, "mi NIE es {}"),
    ("br.cpf", cpf, "CPF {} cadastrado"),
    ("fi.hetu", hetu, "hetu {}"),
    ("se.personnummer", personnummer, "personnummer {}"),
    ("ch.ssn", ahv, "AHV-Nr. {}"),
    ("be.nn", belgian_nn, "rijksregisternummer {}"),
    ("kr.rrn", korean_rrn, "RRN {}"),
    ("fr.nir", nir, "numéro de sécurité sociale {}"),
    ("it.codicefiscale", codice_fiscale, "codice fiscale {}"),
    ("mx.curp", curp, "CURP {}"),
]


def broken(value: str) -> str:
    """The value with its last digit or letter changed (a failed check)."""
    last = value[-1]
    if last.isdigit():
        return value[:-1] + str((int(last) + 3) % 10)
    return value[:-1] + ("B" if last != "B" else "C")


def not_national_ids() -> list[tuple[str, str]]:
    fixed = [
        ("000-12-3456", "SSN area 000"),
        ("666-12-3456", "SSN area 666"),
        ("912-12-3456", "SSN area 9xx (not an ITIN group)"),
        ("987-65-4321", "SSN area 9xx, advertising range"),
        ("123-00-4567", "SSN group 00"),
        ("123-45-0000", "SSN serial 0000"),
        ("078-05-1120", "the Woolworth wallet specimen SSN"),
        ("219-09-9999", "Social Security Administration pamphlet specimen"),
    ]
    out = [(f"my SSN is {v}", why) for v, why in fixed]
    out += [
        ("Order 123-45-6789 ships Monday", "order number in SSN shape"),
        ("part 555-12-3456 replaced", "part number in SSN shape"),
        ("call ext 12345678-A tomorrow", "reference in DNI shape, wrong letter"),
    ]
    return out


# ---- dates of birth ------------------------------------------------------------------------------

DOB = [
    ("DOB: {}", "1985-03-12"),
    ("date of birth {}", "12/03/1985"),
    ("born on {}", "3 March 1985"),
    ("Birthday: {}", "July 4, 1976"),
    ("D.O.B. {}", "04.07.1976"),
    ("my date of birth is {}", "1990-11-30"),
    ("born {}", "21st September 1962"),
    ("birth date: {}", "02/29/2000"),
    ("DOB {}", "1 Jan 2001"),
    ("born on the {}", "5th of May 1999"),
    ("Date of Birth: {}", "31.12.1959"),
    ("dob={}", "1971-06-15"),
    ("born {}", "Dec 25, 1980"),
    ("birthdate {}", "7/8/1993"),
    ("his birthday is {}", "30 June 1988"),
    ("DOB - {}", "15-08-1947"),
    ("born on {}", "1964/02/10"),
    ("date of birth: {}", "11 November 1918"),
    ("patient DOB {}", "03/15/1955"),
    ("Born: {}", "August 9th, 2003"),
]
NOT_DOB = [
    ("born in 1985 in Madrid", "a year, not a date"),
    ("date of birth 31/02/1985", "no such day"),
    ("DOB: 1985-13-01", "no month 13"),
    ("Delivered on 2024-01-15, thanks", "a date, not a birth date"),
    ("invoice date 12/03/2024", "a date, not a birth date"),
    ("born on 30 February 1990", "no such day"),
    ("Reborn 2.0 launched 2023-05-17", "a word containing born"),
    ("stubborn bug since 12/03/2023", "born inside a word"),
    ("birthday sale ends 2024-12-31 23:59", "a shop's birthday sale"),
]


# ---- IP addresses --------------------------------------------------------------------------------

IPS = [
    "203.0.113.7",
    "198.51.100.23",
    "192.168.1.10",
    "10.0.0.1",
    "172.16.254.1",
    "8.8.8.8",
    "81.2.69.160",
    "2001:db8::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "fe80::1ff:fe23:4567:890a",
    "2a00:1450:4001:81a::200e",
    "100.64.0.1",
    "255.255.255.0",
    "127.0.0.1",
    "2001:db8:0:1:1:1:1:1",
    "93.184.216.34",
]
IP_TEMPLATES = [
    "login from {} blocked",
    "my IP is {}",
    "server {} is down",
    "connected from {} at night",
]
NOT_IPS = [
    ("Upgraded to version 1.2.3.4 yesterday", "version number"),
    ("v10.0.19041.1 build", "Windows build"),
    ("firmware 2.10.3.1 fixes it", "firmware version"),
    ("see section 4.2.1.3 of the manual", "section number"),
    ("OID 1.3.6.1.4.1.343 in the MIB", "OID"),
    ("999.1.1.1 is not valid", "octet over 255"),
    ("at 10:30:15 the job ran", "a time"),
    ("ratio 3:4:5:6 holds", "a ratio"),
    ("1.2.3.4.5 release notes", "five parts"),
    ("Build 16.0.14326.20454 crashed", "Office build"),
    ("use std::vector here", "C++ scope"),
    ("the note :: see above", "double colon"),
    ("release 3.11.4.2 notes", "release number"),
    ("update to 21.3.0.1 now", "version after update"),
]


# ---- phones --------------------------------------------------------------------------------------

PHONE_REGIONS = [
    "US",
    "GB",
    "DE",
    "FR",
    "IN",
    "BR",
    "JP",
    "AU",
    "CA",
    "MX",
    "ES",
    "IT",
    "NL",
    "CN",
    "KR",
    "ZA",
    "SE",
    "CH",
    "PL",
    "NG",
]
# libphonenumber's example numbers (national and international formats) of those regions, fixed line
# and mobile
EXAMPLE_PHONES = {
    "US": ["(201) 555-0123", "+1 201-555-0123"],
    "GB": ["0121 234 5678", "+44 121 234 5678", "07400 123456", "+44 7400 123456"],
    "DE": ["030 123456", "+49 30 123456", "01512 3456789", "+49 1512 3456789"],
    "FR": ["01 23 45 67 89", "+33 1 23 45 67 89", "06 12 34 56 78", "+33 6 12 34 56 78"],
    "IN": ["074104 10123", "+91 74104 10123", "081234 56789", "+91 81234 56789"],
    "BR": ["(11) 2345-6789", "+55 11 2345-6789", "(11) 96123-4567", "+55 11 96123-4567"],
    "JP": ["03-1234-5678", "+81 3-1234-5678", "090-1234-5678", "+81 90-1234-5678"],
    "AU": ["(02) 1234 5678", "+61 2 1234 5678", "0412 345 678", "+61 412 345 678"],
    "CA": ["(506) 234-5678", "+1 506-234-5678"],
    "MX": ["200 123 4567", "+52 200 123 4567", "222 123 4567"],
    "ES": ["810 12 34 56", "+34 810 12 34 56", "612 34 56 78", "+34 612 34 56 78"],
    "IT": ["02 1234 5678", "+39 02 1234 5678", "312 345 6789", "+39 312 345 6789"],
    "NL": ["010 123 4567", "+31 10 123 4567", "06 12345678", "+31 6 12345678"],
    "CN": ["010 1234 5678", "+86 10 1234 5678", "131 2345 6789", "+86 131 2345 6789"],
    "KR": ["02-212-3456", "+82 2-212-3456", "010-2000-0000", "+82 10-2000-0000"],
    "ZA": ["010 123 4567", "+27 10 123 4567", "071 123 4567", "+27 71 123 4567"],
    "SE": ["08-12 34 56", "+46 8 12 34 56", "070-123 45 67", "+46 70 123 45 67"],
    "CH": ["021 234 56 78", "+41 21 234 56 78", "078 123 45 67", "+41 78 123 45 67"],
    "PL": ["12 345 67 89", "+48 12 345 67 89", "512 345 678", "+48 512 345 678"],
    "NG": ["02033 12 3456", "+234 2033 12 3456", "0802 123 4567", "+234 802 123 4567"],
}
# Written by hand in common formats: fiction ranges (US 555-01xx, UK Ofcom drama numbers), and E.164
# with no spaces
MORE_PHONES = [
    ("US", "415-555-0132"),
    ("US", "(415) 555-0198"),
    ("US", "+1 (415) 555-0175"),
    ("US", "415.555.0111"),
    ("US", "+14155550142"),
    ("US", "1-800-555-0199"),
    ("GB", "020 7946 0958"),
    ("GB", "+44 20 7946 0321"),
    ("GB", "07911 123456"),
    ("GB", "+447911123456"),
    ("GB", "+44 (0)20 7946 0018"),
    ("DE", "+49 (0)30 901820"),
    ("DE", "0171 1234567"),
    ("FR", "01.23.45.67.89"),
    ("FR", "+33612345678"),
    ("IN", "+91 98765 43210"),
    ("AU", "+61 491 570 156"),
    ("AU", "(03) 9123 4567"),
    ("JP", "+81-3-1234-5678"),
    ("BR", "+55 (21) 98765-4321"),
]
PHONE_TEMPLATES = [
    "call me on {}",
    "my number is {}",
    "Reach us at {} anytime",
    "Tel: {}",
    "{} (mobile)",
    "please ring {} after 5pm",
    "whatsapp {}",
    "I phoned {} twice",
    "contact {} for support",
]
NOT_PHONES = [
    ("Meeting at 2024-01-15 10:30 in room B", "date and time"),
    ("Date: 2023 05 17 2023", "date with spaces"),
    ("order #123-456-789 shipped", "order number"),
    ("SKU 12-345-6789 out of stock", "SKU"),
    ("Delivered 15.01.2024 at 14:05", "European date and time"),
    ("logged 2023-11-02 08:15:00", "timestamp"),
    ("from 01/02/2024 to 28/02/2024", "date range"),
    ("on 2024 01 15 the server restarted", "date with spaces"),
    ("Version 10.0.19041.1 installed", "version"),
    ("build 2.14.1-3 released", "version with a dash"),
    ("ISBN 978-3-16-148410-0 in stock", "ISBN-13"),
    ("ISBN 0-306-40615-2 reprinted", "ISBN-10"),
    ("978-0-306-40615-7 is the new edition", "ISBN-13 without the word"),
    ("Price: $1 299.00 incl. tax", "price"),
    ("Total EUR 12 345 678.90 due", "amount"),
    ("costs 1 234 567 yen", "price in yen"),
    ("tracking number 1Z 999 AA1 01 2345 6784", "UPS tracking number"),
    ("tracking 9400 1000 0000 0000 0000 00", "USPS tracking"),
    ("Parcel 7712 3456 7890 sent", "FedEx-like parcel number"),
    ("invoice 2024-0042-17 attached", "invoice number"),
    ("Ticket 4521-889-123 updated", "ticket number"),
    ("ref 004 5521 889 in the letter", "reference number"),
    ("Case No. 24-551-8890 closed", "case number"),
    ("order 1122 3344 5566 confirmed", "order number with spaces"),
    ("Item 300 200 1001 returned", "item number"),
    ("serial 12-3456-7890 on the label", "serial number"),
    ("ZIP 94103-1234 is ours", "ZIP+4"),
    ("From 1990-2020 sales grew", "year range"),
    ("Call between 9:00 - 17:30 daily", "opening hours"),
    ("pages 123-145 and 201-233", "page ranges"),
    ("scores 12 14 16 18 20 22", "a list of numbers"),
    ("lot 2231-114-09 recalled", "lot number"),
    ("model 7-2000-33 in black", "model number"),
    ("IMEI 35 693803 564380 9", "IMEI with spaces"),
    ("12.03.2024 10:45 Uhr", "German date and time"),
    ("2024/01/15 10:30 JST", "Japanese date and time"),
    ("Q3 2023 results: 45 233 012 users", "user count"),
    ("coordinates 40.7128 -74.0060 here", "coordinates"),
    ("Release 2024.01.15.1 shipped", "date-based version"),
    ("v 1.2.3.4567 hotfix", "version after v"),
    ("account 12 3456 7890 closed", "account number with spaces"),
    ("PO 4500-123-456 approved", "purchase order"),
    ("1.234.567,89 € überwiesen", "price, European format"),
    ("at 10.30 - 11.45 we meet", "time range"),
    ("batch 20231115-0042 failed", "batch id"),
    ("Doc 12 345 6789 scanned", "document number"),
    ("12 Jan 2024 16:00 deadline", "date and time"),
    ("#2024 15 01 release", "hash tag number"),
]


# A second batch, written after the first one passed, to check that it was not fitted to it.
EXTRA_TRUE = [
    ("US", "Call 212-555-0147.", "phone", "212-555-0147"),
    ("US", "(646) 555-0192, ext. 12", "phone", "(646) 555-0192"),
    ("US", "my cell: 917.555.0163!", "phone", "917.555.0163"),
    ("DE", "Tel. +49 89 1234567", "phone", "+49 89 1234567"),
    ("DE", "erreichbar unter 0049 30 1234567", "phone", "0049 30 1234567"),
    ("FR", "appelez le 06-12-34-56-78", "phone", "06-12-34-56-78"),
    ("IT", "cellulare +39 347 123 4567", "phone", "+39 347 123 4567"),
    ("ES", "llámame al +34 91 123 45 67", "phone", "+34 91 123 45 67"),
    ("JP", "電話 03 1234 5678 まで", "phone", "03 1234 5678"),
    ("IN", "WhatsApp +91-98765-43210", "phone", "+91-98765-43210"),
    ("BR", "zap 11 98765-4321", "phone", "11 98765-4321"),
    ("MX", "marca al +52 55 1234 5678", "phone", "+52 55 1234 5678"),
    ("NL", "bel +31 20 123 4567", "phone", "+31 20 123 4567"),
    ("CN", "手机 +86 139 1234 5678", "phone", "+86 139 1234 5678"),
    ("KR", "연락처 010-1234-5678", "phone", "010-1234-5678"),
    ("US", "Contact sales@company.co for info", "email", "sales@company.co"),
    ("US", "From: Jane <jane@example.org>", "email", "jane@example.org"),
    ("US", "mailto:bob@example.com", "email", "bob@example.com"),
    ("US", "card 4111-1111-1111-1111 on file", "card", "4111-1111-1111-1111"),
    ("US", "use 5555555555554444", "card", "5555555555554444"),
    ("US", "amex 3714 496353 98431", "card", "3714 496353 98431"),
    ("US", "DOB 03/15/55 per chart", "date_of_birth", "03/15/55"),
    ("US", "http://10.0.0.1/admin is open", "ip", "10.0.0.1"),
    ("US", "ping 2001:db8:85a3::8a2e:370:7334 fails", "ip", "2001:db8:85a3::8a2e:370:7334"),
    ("US", "IBAN: DE44 5001 0517 5407 3249 31", "iban", "DE44 5001 0517 5407 3249 31"),
]
EXTRA_FALSE = [
    ("US", "Room 1204-1206 is booked", "room range"),
    ("US", "The 2022-2023 season starts", "season"),
    ("US", "Serial number: 123-456-7890", "serial number"),
    ("NL", "Postcode 1012 AB Amsterdam", "postcode"),
    ("NL", "Latitude 52.3676, 4.9041 here", "coordinates"),
    ("US", "Score: 3-1, 2-0, 4-4", "scores"),
    ("US", "ISBN-13: 9780306406157", "ISBN without separators"),
    ("US", "Invoice INV-2024-00123 is due", "invoice id"),
    ("US", "Order ID 112-4567890-1234567 delivered", "Amazon order id"),
    ("US", "112-4567890-1234567 was delivered", "order id without the word"),
    ("US", "call me at 10:30 tomorrow", "a time after a phone word"),
    ("DE", "ruf mich am 15.01.2024 an", "a date after a phone word"),
    ("GB", "ring me between 9.30-10.45", "a time range after a phone word"),
    ("US", "Python 3.11.4 crashed", "version"),
    ("US", "Chrome 120.0.6099.109 update", "browser version"),
    (
        "US",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
        "user agent: browser version",
    ),
    ("US", "Tracking: 1Z999AA10123456784", "UPS tracking"),
    ("US", "temperature 36.6 - 37.2 C", "temperatures"),
    ("FR", "Prix : 1 299,00 €", "price"),
    ("DE", "Artikelnummer 4006381333931", "EAN barcode"),
    ("US", "EAN 4006381333931 scanned", "EAN barcode"),
    ("US", "Flight UA 1234 departs 08:45", "flight"),
    ("US", "between 1 000 000 and 2 000 000 users", "counts"),
    ("US", "SSN field left blank: 000-00-0000", "placeholder SSN"),
    ("US", "Phone: 555-1234", "seven digits, no area code"),
    ("US", "test card 1234 5678 9012 3456", "card-shaped, Luhn fails"),
]


def cases(rng: random.Random) -> list[dict]:
    rows = []

    def add(text: str, region: str, pii: list, about: str) -> None:
        rows.append({"text": text, "region": region, "pii": pii, "about": about})

    for i, e in enumerate(EMAILS):
        add(
            EMAIL_TEMPLATES[i % len(EMAIL_TEMPLATES)].format(e),
            "US",
            [["email", e]],
            "e-mail address",
        )
    for text, why in NOT_EMAILS:
        add(text, "US", [], why)
    for i, c in enumerate(TEST_CARDS + cards(rng)):
        add(CARD_TEMPLATES[i % len(CARD_TEMPLATES)].format(c), "US", [["card", c]], "card number")
    for text, why in not_cards(rng):
        add(text, "US", [], why)
    for i, v in enumerate(IBANS):
        add(IBAN_TEMPLATES[i % len(IBAN_TEMPLATES)].format(v), "US", [["iban", v]], "IBAN")
    for text, why in not_ibans():
        add(text, "US", [], why)
    for name, make, template in NATIONAL:
        for _ in range(3):
            v = make(rng)
            add(template.format(v), "US", [["national_id", v]], name)
        if not name.startswith("us."):
            add(
                template.format(broken(make(rng))), "US", [], f"{name} with a wrong check character"
            )
    for text, why in not_national_ids():
        add(text, "US", [], why)
    for template, date in DOB:
        add(template.format(date), "US", [["date_of_birth", date]], "date of birth")
    for text, why in NOT_DOB:
        add(text, "US", [], why)
    for i, ip in enumerate(IPS):
        add(IP_TEMPLATES[i % len(IP_TEMPLATES)].format(ip), "US", [["ip", ip]], "IP address")
    for text, why in NOT_IPS:
        add(text, "US", [], why)
    i = 0
    for region, numbers in EXAMPLE_PHONES.items():
        for number in numbers:
            add(
                PHONE_TEMPLATES[i % len(PHONE_TEMPLATES)].format(number),
                region,
                [["phone", number]],
                f"{region} phone, libphonenumber example",
            )
            i += 1
    for region, number in MORE_PHONES:
        add(
            PHONE_TEMPLATES[i % len(PHONE_TEMPLATES)].format(number),
            region,
            [["phone", number]],
            f"{region} phone",
        )
        i += 1
    for j, (text, why) in enumerate(NOT_PHONES):
        add(text, PHONE_REGIONS[j % len(PHONE_REGIONS)], [], why)
    for region, text, kind, value in EXTRA_TRUE:
        add(text, region, [[kind, value]], f"{kind}, second batch")
    for region, text, why in EXTRA_FALSE:
        add(text, region, [], f"{why}, second batch")
    return rows


def main() -> None:
    rows = cases(random.Random(0))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    print(f"{OUT}: {len(rows)} candidates, {sum(bool(r['pii']) for r in rows)} true")


if __name__ == "__main__":
    main()
