"""URL converters: an id in a path is a positive 32-bit integer, or the URL names nothing (404).

Werkzeug's own `int` converter matches any run of digits and checks `min`/`max` only afterwards.
A value out of range then fails after the method check of the rules that share its path, so
`POST /api/instances/99999999999/keys/` answered 405 ("GET is allowed"), and an id past the
database's integer range reached a query and failed there (500 on PostgreSQL). Here the range is
part of the pattern itself: a number out of range does not match the rule at all.
"""
from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map

MAX_ID = 2**31 - 1  # the largest value of the database's INTEGER primary keys


def _at_most(limit: int) -> str:
    """A regular expression for the decimal numbers 1..limit, without leading zeros."""
    digits = str(limit)
    width = len(digits)
    choices = []
    if width > 1:
        choices.append(rf"[1-9][0-9]{{0,{width - 2}}}")  # every number with fewer digits
    for i, digit in enumerate(digits):  # same width: equal to `limit` up to i, smaller at i
        low = 1 if i == 0 else 0
        high = int(digit) - 1
        if high < low:
            continue
        rest = width - i - 1
        choices.append(digits[:i] + f"[{low}-{high}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(digits)
    return "(?:" + "|".join(choices) + ")"


class IdConverter(IntegerConverter):
    """`<int:name>` for ids: 1..MAX_ID by default (`min` may be 0 or 1, `max` at most MAX_ID)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        if fixed_digits or signed:
            raise ValueError("the id converter takes no fixed_digits or signed arguments")
        low = 1 if min is None else min
        high = MAX_ID if max is None else max
        if low not in (0, 1) or not 1 <= high <= MAX_ID:
            raise ValueError(f"an id converter covers 0 or 1 up to at most {MAX_ID}, not {low}..{high}")
        super().__init__(map, min=low, max=high)
        self.regex = ("0|" if low == 0 else "") + _at_most(high)


def init_app(app) -> None:
    """Make every `<int:...>` in the app's rules an id converter; call before any blueprint is registered."""
    app.url_map.converters["int"] = IdConverter
