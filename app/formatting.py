"""Template filters and globals: money, credits, dates."""
from __future__ import annotations

from datetime import datetime

from flask import Flask

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
CURRENCY_EXPONENT = {"JPY": 0, "KRW": 0}
MAX_AMOUNT_MINOR = 2**31 - 1  # what an amount column holds (21,474,836.47 in a 2-decimal currency)


def money(minor: int | None, currency: str = "USD") -> str:
    """Minor units to a display string: 4900, USD -> $49.00. Integer arithmetic only."""
    if minor is None:
        return ""
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    symbol = CURRENCY_SYMBOLS.get(currency)
    if exponent == 0:
        number = f"{minor:,}"
    else:
        major, rest = divmod(minor, 10**exponent)
        number = f"{major:,}.{rest:0{exponent}d}"
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


def minor_units(amount: object, currency: str) -> int:
    """A decimal amount as another system sends it ("49.9", 49.9, "1e3") to integer minor units, without
    floats. Raises ValueError for what no order can cost: NaN, infinities, negative amounts, booleans and
    amounts past what the amount columns hold (such as 1e308)."""
    from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

    if isinstance(amount, bool):
        raise ValueError(f"Not an amount: {amount!r}")
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        raise ValueError(f"Not an amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"Not an amount: {amount!r}")
    if value < 0:
        raise ValueError(f"A negative amount: {amount!r}")
    if value.adjusted() > 20:  # far past the limit: refuse before scaling a huge exponent
        raise ValueError(f"An amount too large: {amount!r}")
    minor = int(value.scaleb(CURRENCY_EXPONENT.get(currency.upper(), 2)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(f"An amount too large: {amount!r}")
    return minor


def decimal_amount(minor: int, currency: str) -> str:
    """Minor units as a plain decimal string, for forms and exports: 2900, USD -> "29.00"; 500, JPY -> "500"."""
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    if exponent == 0:
        return str(minor)
    major, rest = divmod(minor, 10**exponent)
    return f"{major}.{rest:0{exponent}d}"


def credits(value: int | None) -> str:
    return f"{value or 0:,}"


def date(value: datetime | None, fmt: str = "%b %d, %Y") -> str:
    return value.strftime(fmt) if value else ""


def datetime_filter(value: datetime | None) -> str:
    return value.strftime("%b %d, %Y %H:%M UTC") if value else ""


def init_app(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(credits, "credits")
    app.add_template_filter(date, "date")
    app.add_template_filter(datetime_filter, "datetime")
