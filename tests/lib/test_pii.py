"""pii.find searches only around a text's digits: the spans must be those of a search of the whole text."""
import random

import pytest

from tunebuild import pii

PIECES = ["4111 1111 1111 1111", "+1 415 555 0100", "078-05-1120", "203.0.113.7", "DE89 3704 0044 0532 0130 00",
          "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "abcd:ef01:2345:6789:abcd:ef01:2345:6789", "a.b@example.com",
          "(020) 7946 0958", "12-34", "order 123456", "٣٤٥ ٦٧٨ ٩٠١٢"]
ALPHABET = "abcXYZ DE 0123456789 -.:+()@_\n٣"


def whole_text(text: str) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for kind in pii.TYPES:
        for m in pii.PATTERNS[kind].finditer(text):
            if not any(s < m.end() and m.start() < e for _, s, e in spans) and pii._confirmed(kind, m.group()):
                spans.append((kind, m.start(), m.end()))
    return sorted(spans, key=lambda s: s[1])


@pytest.mark.parametrize("seed", range(3))
def test_windowed_search_finds_what_a_whole_text_search_finds(seed):
    rng = random.Random(seed)
    for _ in range(1500):
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
        assert pii.find(text) == whole_text(text), text


def test_window_is_around_the_digits():
    text = "x" * 500 + " card 4111 1111 1111 1111 " + "y" * 500
    pos, endpos = pii.window(text, "card")
    assert pos == 506 - 40 and endpos == 524 + 40 + 1
    assert pii.window("no digits at all", "phone") == (0, 0)
    assert pii.window("mail a@b.example", "email") == (0, 16)
