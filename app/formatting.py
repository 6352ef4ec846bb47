"""Template filters and globals: money, credits, dates."""
from __future__ import annotations

from datetime import datetime

from flask import Flask

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
CURRENCY_EXPONENT = {"JPY": 0, "KRW": 0}


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
