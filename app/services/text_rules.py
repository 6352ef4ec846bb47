"""Rules for text that other people read as a name: offering names and summaries, plan names,
organization names.

Such text must not carry characters that change how it looks without being seen: bidirectional
controls can make "Acme" + U+202E + "lanif" read as "Acmefinal" (or reorder a price), and zero-width
characters make two names that look the same compare different. They are refused, with the field
named, wherever a name enters: the services, the API schemas and the seller forms all call
`refuse_spoofing_characters`.
"""
from __future__ import annotations

import unicodedata

from app.services.errors import ServiceError

# U+202A..U+202E (embeddings and overrides), U+2066..U+2069 (isolates)
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# zero width space, non-joiner, joiner; word joiner; the byte order mark (zero width no-break space)
ZERO_WIDTH = frozenset(chr(c) for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF))
SPOOFING_CHARACTERS = BIDI_CONTROLS | ZERO_WIDTH

# The same set as a regular-expression class, for JSON Schema `pattern`s (escaped code points)
SPOOFING_PATTERN = "[" + "".join(f"\\u{ord(c):04x}" for c in sorted(SPOOFING_CHARACTERS)) + "]"


class TextRuleError(ServiceError):
    """Text holds a character that can disguise what it says; `field` names the input."""

    status = 422


def refuse_spoofing_characters(value: str | None, *, field: str,
                               error: type[ServiceError] = TextRuleError) -> str | None:
    """Return `value` unchanged, or raise `error` (a ServiceError class: the calling service's own)
    with a message naming the first such character, and `field`, at status 422."""
    if not value:
        return value
    for char in value:
        if char in SPOOFING_CHARACTERS:
            raise error(spoofing_message(char), field=field, status=422)
    return value


def spoofing_message(char: str) -> str:
    kind = "text-direction control" if char in BIDI_CONTROLS else "invisible"
    return (f"Remove the {kind} character U+{ord(char):04X} ({unicodedata.name(char, 'unnamed').title()}): "
            "it can make this text look like something else.")
