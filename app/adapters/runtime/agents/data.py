"""Data agents: invoice field extraction into JSON, and CSV cleaning with a change report.

Amounts are parsed into integer minor units (never floats) and shown as decimal strings.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

from app.adapters.runtime import RunContext, RuntimeInputError
from app.adapters.runtime.agents import AgentResult

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
MONTHS.update({name[:3]: n for name, n in list(MONTHS.items())})
MONTHS["sept"] = 9
CURRENCY_SIGNS = {"$": "USD", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a5": "JPY"}
CURRENCY_CODES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "INR")
EXPONENT = {"JPY": 0}

_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
DATE_PATTERN = (
    r"(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH_NAMES})\.?,?\s+\d{{4}}|(?:{_MONTH_NAMES})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)
_CUR = r"(?:[$\u20ac\u00a3\u00a5]|" + "|".join(CURRENCY_CODES) + r")"
AMOUNT = re.compile(
    rf"(?P<pre>{_CUR})?\s*(?P<num>-?\d{{1,3}}(?:[,.'\u2009 ]\d{{3}})+(?:[.,]\d{{1,2}})?|-?\d+(?:[.,]\d{{1,2}})?)(?!\s*%)\s*(?P<post>{_CUR})?",
    re.I,
)


def parse_date(text: str, *, prefer_month_first: bool = False) -> tuple[date | None, str | None]:
    """A date and, when the day/month order had to be guessed, a warning."""
    t = text.strip().lower().replace(",", " ")
    t = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", t)
    try:
        match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", t)
        if match:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3))), None
        match = re.fullmatch(r"(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})", t)
        if match:
            a, b, y = int(match.group(1)), int(match.group(2)), int(match.group(3))
            y += 2000 if y < 100 else 0
            if a > 12:
                return date(y, b, a), None
            if b > 12:
                return date(y, a, b), None
            if a == b:
                return date(y, a, b), None
            month_first = prefer_month_first and "." not in text
            d = date(y, a, b) if month_first else date(y, b, a)
            return d, (f"\u2018{text.strip()}\u2019 read as {'month/day' if month_first else 'day/month'}; check it")
        match = re.fullmatch(r"(\d{1,2})\s+([a-z]+)\.?\s+(\d{4})", " ".join(t.split()))
        if match and match.group(2) in MONTHS:
            return date(int(match.group(3)), MONTHS[match.group(2)], int(match.group(1))), None
        match = re.fullmatch(r"([a-z]+)\.?\s+(\d{1,2})\s+(\d{4})", " ".join(t.split()))
        if match and match.group(1) in MONTHS:
            return date(int(match.group(3)), MONTHS[match.group(1)], int(match.group(2))), None
    except ValueError:
        return None, f"\u2018{text.strip()}\u2019 is not a valid date"
    return None, None


def parse_amount(raw: str, currency: str | None) -> int:
    """'1,234.56' / '1.234,56' / "1'234.50" -> minor units of `currency` (2 decimals unless JPY)."""
    num = raw.replace("\u2009", "").replace(" ", "").replace("'", "")
    negative = num.startswith("-")
    num = num.lstrip("-")
    match = re.fullmatch(r"(.*?)[.,](\d{1,2})", num)
    if match and not re.fullmatch(r"\d{1,3}[.,]\d{3}", num):
        whole, fraction = match.group(1), match.group(2)
    else:
        whole, fraction = num, ""
    whole = re.sub(r"[.,]", "", whole) or "0"
    exponent = EXPONENT.get(currency or "", 2)
    minor = int(whole) * 10**exponent + (int(fraction.ljust(exponent, "0")[:exponent]) if exponent and fraction else 0)
    return -minor if negative else minor


def format_minor(minor: int, currency: str | None) -> str:
    exponent = EXPONENT.get(currency or "", 2)
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 10**exponent)
    return f"{sign}{major}.{rest:0{exponent}d}"


def _currency_of(match: re.Match) -> str | None:
    token = (match.group("pre") or match.group("post") or "").upper()
    return CURRENCY_SIGNS.get(token, token or None)


def _labelled_amount(lines: list[str], label: str, exclude: str | None = None):
    """The last amount on the last line whose start matches `label` (and not `exclude`)."""
    found = None
    for line in lines:
        head = line.strip().lower()
        if not re.match(label, head) or (exclude and re.match(exclude, head)):
            continue
        rest = re.sub(label, "", head, count=1)
        rest_original = line.strip()[len(line.strip()) - len(rest):]
        rate = re.search(r"(\d+(?:[.,]\d+)?)\s*%", rest_original)
        amounts = [m for m in AMOUNT.finditer(re.sub(r"\d+(?:[.,]\d+)?\s*%", " ", rest_original)) if m.group("num")]
        if amounts:
            found = (amounts[-1], rate.group(1).replace(",", ".") if rate else None)
    return found


def invoice_extract(input_text: str, context: RunContext) -> AgentResult:
    """Invoice number, vendor, bill-to, issue and due dates, currency, subtotal, tax and total as JSON."""
    text = input_text.strip()
    if not text:
        raise RuntimeInputError("Paste the text of an invoice.")
    lines = [l for l in text.splitlines() if l.strip()]
    warnings: list[str] = []
    result: dict = {}

    number = re.search(r"invoice\s*(?:no\.?|number|num\.?|#|id)?\s*[:#]?\s*#?\s*([A-Z0-9][A-Z0-9\-/_.]*\d[A-Z0-9\-/_]*)", text, re.I)
    result["invoice_number"] = number.group(1) if number else None

    vendor = re.search(r"^\s*(?:from|vendor|supplier|seller|issued by)\s*[:\-]\s*(.+)$", text, re.I | re.M)
    if vendor:
        result["vendor"] = vendor.group(1).strip()
    else:
        first = next((l.strip() for l in lines if not re.search(r"\binvoice\b|\d", l, re.I)), None)
        result["vendor"] = first
    bill_to = re.search(r"^\s*(?:bill(?:ed)? to|customer|client|sold to)\s*[:\-]\s*(.*)$", text, re.I | re.M)
    if bill_to:
        value = bill_to.group(1).strip()
        if not value:
            following = text[bill_to.end():].strip().splitlines()
            value = following[0].strip() if following else ""
        result["bill_to"] = value or None
    else:
        result["bill_to"] = None

    codes = [c.upper() for c in re.findall(_CUR, text, re.I)]
    currencies = {CURRENCY_SIGNS.get(c, c) for c in codes}
    currency = sorted(currencies)[0] if len(currencies) == 1 else None
    if len(currencies) > 1:
        warnings.append("More than one currency appears: " + ", ".join(sorted(currencies)))
    month_first = currency == "USD"

    def labelled_date(label: str) -> date | None:
        match = re.search(rf"^\s*(?:{label})\s*(?:date)?\s*[:\-]?\s*(?:on\s+)?{DATE_PATTERN}", text, re.I | re.M)
        if not match:
            return None
        value, warning = parse_date(match.group(1), prefer_month_first=month_first)
        if warning:
            warnings.append(warning)
        return value

    issued = labelled_date(r"invoice date|date of issue|issue date|issued(?: on)?|dated?")
    due = labelled_date(r"due date|payment due|due(?: by| on)?|pay by")
    terms = re.search(r"\bnet\s*(\d{1,3})\b", text, re.I)
    if due is None and issued is not None and terms:
        due = issued + timedelta(days=int(terms.group(1)))
        warnings.append(f"Due date computed from payment terms net {terms.group(1)}.")
    result["issue_date"] = issued.isoformat() if issued else None
    result["due_date"] = due.isoformat() if due else None

    amounts: dict[str, dict] = {}
    for key, label, exclude in (
        ("subtotal", r"sub[\s-]?total|net amount|total net|net total", None),
        ("tax", r"(?:sales\s+)?tax|vat|gst|hst", None),
        ("total", r"amount due|balance due|total due|grand total|total amount|invoice total|total", r"total\s+net"),
    ):
        found = _labelled_amount(lines, label, exclude)
        if found:
            match, rate = found
            cur = _currency_of(match) or currency
            minor = parse_amount(match.group("num"), cur)
            entry = {"amount": format_minor(minor, cur), "minor": minor}
            if key == "tax" and rate:
                entry["rate"] = f"{rate}%"
            amounts[key] = entry
            currency = currency or cur
    result["currency"] = currency
    result.update({k: amounts.get(k) for k in ("subtotal", "tax", "total")})
    if currency is None:
        warnings.append("No currency symbol or code found.")

    checks: dict[str, bool] = {}
    if all(amounts.get(k) for k in ("subtotal", "tax", "total")):
        checks["totals_add_up"] = amounts["subtotal"]["minor"] + amounts["tax"]["minor"] == amounts["total"]["minor"]
        if not checks["totals_add_up"]:
            warnings.append("Subtotal plus tax does not equal the total.")
        rate = amounts["tax"].get("rate")
        if rate:
            whole, _, fraction = rate.rstrip("%").partition(".")
            rate_ppm = int(whole) * 10_000 + int((fraction or "0")[:4].ljust(4, "0"))  # rate in 1/1,000,000
            expected = (amounts["subtotal"]["minor"] * rate_ppm + 500_000) // 1_000_000
            checks["tax_matches_rate"] = abs(expected - amounts["tax"]["minor"]) <= 1
            if not checks["tax_matches_rate"]:
                warnings.append(f"Tax does not match {rate} of the subtotal.")
    if issued and due and due < issued:
        warnings.append("The due date is before the issue date.")
    result["checks"] = checks
    result["warnings"] = warnings
    if not any(result.get(k) for k in ("invoice_number", "issue_date", "total", "subtotal")):
        raise RuntimeInputError("No invoice fields found: paste the invoice text with its number, dates and totals.")
    return AgentResult(json.dumps(result, indent=2, ensure_ascii=False), result)


# --- csv-clean -----------------------------------------------------------------------------

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


def _kind_of(header: str) -> str:
    h = header.lower()
    if "email" in h or h == "e_mail":
        return "email"
    if any(k in h for k in ("phone", "mobile", "tel", "fax")):
        return "phone"
    if "date" in h or h.endswith("_at") or h in {"dob", "birthday", "created", "updated"}:
        return "date"
    if "name" in h:
        return "name"
    return "text"


def _clean_phone(value: str) -> tuple[str, str | None]:
    digits = re.sub(r"\D", "", value)
    plus = value.strip().startswith("+") or value.strip().startswith("00")
    if value.strip().startswith("00"):
        digits = digits[2:]
    if len(digits) < 7 or len(digits) > 15:
        return value, "not a phone number"
    return ("+" + digits if plus else digits), None


def csv_clean(input_text: str, context: RunContext) -> AgentResult:
    """Trim, normalize emails/phones/dates/names, drop empty and duplicate rows; report every change."""
    text = input_text.strip("\ufeff\n\r ")
    if not text:
        raise RuntimeInputError("Paste CSV with a header row.")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if len(rows) < 2:
        raise RuntimeInputError("Paste CSV with a header row and at least one data row.")
    raw_header = rows[0]
    header = [re.sub(r"[^a-z0-9]+", "_", h.strip().lower()).strip("_") or f"column_{i + 1}"
              for i, h in enumerate(raw_header)]
    changes: list[str] = []
    renamed = [f"\u2018{a.strip()}\u2019\u2192\u2018{b}\u2019" for a, b in zip(raw_header, header) if a.strip() != b]
    if renamed:
        changes.append("Header normalized: " + ", ".join(renamed))
    kinds = [_kind_of(h) for h in header]
    counts = {"trimmed": 0, "email": 0, "phone": 0, "date": 0, "name": 0}
    problems: list[str] = []
    cleaned: list[tuple[int, list[str]]] = []
    empty = 0
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            empty += 1
            continue
        if len(row) != len(header):
            problems.append(f"row {line_no}: {len(row)} values for {len(header)} columns (padded or cut)")
            row = (row + [""] * len(header))[: len(header)]
        out = []
        for value, kind, column in zip(row, kinds, header):
            new = " ".join(value.split())
            if new != value:
                counts["trimmed"] += 1
            if new and kind == "email":
                lowered = new.lower()
                if lowered != new:
                    counts["email"] += 1
                new = lowered
                if not EMAIL.match(new):
                    problems.append(f"row {line_no}: {column} \u2018{new}\u2019 is not a valid email")
            elif new and kind == "phone":
                phone, problem = _clean_phone(new)
                if problem:
                    problems.append(f"row {line_no}: {column} \u2018{new}\u2019 is {problem}")
                elif phone != new:
                    counts["phone"] += 1
                    new = phone
            elif new and kind == "date":
                parsed, warning = parse_date(new)
                if parsed and not warning:
                    if parsed.isoformat() != new:
                        counts["date"] += 1
                    new = parsed.isoformat()
                elif warning and parsed:
                    problems.append(f"row {line_no}: {column} \u2018{new}\u2019 could be day/month or month/day (left as is)")
                else:
                    problems.append(f"row {line_no}: {column} \u2018{new}\u2019 is not a date")
            elif new and kind == "name" and (new.isupper() or new.islower()):
                titled = " ".join(part[:1].upper() + part[1:].lower() for part in new.split())
                if titled != new:
                    counts["name"] += 1
                    new = titled
            out.append(new)
        cleaned.append((line_no, out))

    kept: list[tuple[int, list[str]]] = []
    seen_rows: dict[tuple[str, ...], int] = {}
    seen_emails: dict[str, int] = {}
    email_columns = [i for i, k in enumerate(kinds) if k == "email"]
    duplicates: list[str] = []
    for line_no, row in cleaned:
        key = tuple(row)
        if key in seen_rows:
            duplicates.append(f"row {line_no} repeats row {seen_rows[key]}")
            continue
        email = row[email_columns[0]] if email_columns else ""
        if email and email in seen_emails:
            duplicates.append(f"row {line_no} has the same {header[email_columns[0]]} as row {seen_emails[email]} ({email})")
            continue
        seen_rows[key] = line_no
        if email:
            seen_emails[email] = line_no
        kept.append((line_no, row))

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(row for _, row in kept)
    labels = {"trimmed": ("cell", "with extra whitespace trimmed"), "email": ("email", "lower-cased"),
              "phone": ("phone number", "normalized"), "date": ("date", "rewritten as YYYY-MM-DD"),
              "name": ("name", "re-capitalized")}
    changes += [f"{n} {labels[k][0]}{'s' if n != 1 else ''} {labels[k][1]}" for k, n in counts.items() if n]
    if empty:
        changes.append(f"{empty} empty row{'s' if empty > 1 else ''} removed")
    if duplicates:
        changes.append(f"{len(duplicates)} duplicate row{'s' if len(duplicates) > 1 else ''} removed")
    report = [f"Rows: {len(rows) - 1} in, {len(kept)} out.", "", "Changes:"]
    report += [f"- {c}" for c in changes] or ["- None needed."]
    if duplicates:
        report += ["", "Duplicates removed:"] + [f"- {d}" for d in duplicates]
    if problems:
        report += ["", "Needs a look (left unchanged):"] + [f"- {p}" for p in problems]
    cleaned_csv = buffer.getvalue()
    text_out = "Cleaned CSV:\n" + cleaned_csv + "\n" + "\n".join(report)
    return AgentResult(text_out, {"csv": cleaned_csv, "rows_in": len(rows) - 1, "rows_out": len(kept),
                                  "changes": changes, "duplicates": duplicates, "problems": problems})
