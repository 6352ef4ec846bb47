"""Scoring agents: ticket triage (topic + urgency with reasons) and lead scoring (points per signal)."""
from __future__ import annotations

import re

from app.adapters.runtime import RunContext, RuntimeInputError
from app.adapters.runtime.agents import AgentResult
from app.adapters.runtime.agents.textkit import clip, parse_fields, stem, words

# --- triage --------------------------------------------------------------------------------

# cue -> weight; a cue with a space is matched as a phrase in the lower-cased text, else as a stemmed word
TOPICS: dict[str, dict[str, int]] = {
    "billing": {"invoice": 3, "charge": 3, "refund": 3, "payment": 3, "billing": 3, "card": 2, "price": 2,
                "pricing": 2, "subscription": 2, "receipt": 2, "overcharged": 3, "charged twice": 4, "vat": 2,
                "plan": 1, "credit": 1},
    "bug": {"error": 3, "bug": 3, "crash": 3, "broken": 3, "fail": 2, "exception": 3, "not working": 3,
            "doesn't work": 3, "does not work": 3, "stack trace": 3, "regression": 3, "timeout": 2, "freeze": 3,
            "glitch": 2, "500": 2, "blank page": 3, "slow": 1},
    "account": {"login": 3, "log in": 3, "sign in": 3, "password": 3, "locked": 3, "2fa": 3, "two-factor": 3,
                "access": 2, "username": 2, "permission": 2, "sso": 2, "account": 1, "verification": 2},
    "feature_request": {"feature": 3, "would be nice": 3, "would be great": 3, "suggest": 2, "could you add": 3,
                        "please add": 3, "wish": 2, "support for": 2, "integration": 2, "roadmap": 2,
                        "enhancement": 3, "idea": 2},
}
QUEUES = {"billing": "Billing", "bug": "Engineering", "account": "Account support",
          "feature_request": "Product", "general": "General support"}
URGENCY_CUES: dict[str, int] = {
    "outage": 4, "down for": 4, "is down": 4, "all users": 4, "everyone": 2, "data loss": 5, "security": 4,
    "breach": 5, "hacked": 5, "production": 3, "urgent": 2, "asap": 2, "immediately": 2, "blocked": 2,
    "cannot": 2, "can't": 2, "unable": 2, "charged twice": 2, "deadline": 2, "today": 1, "right now": 2,
    "no rush": -3, "when you have time": -3, "minor": -2, "low priority": -3, "just wondering": -2,
    "nice to have": -2, "whenever": -2,
}
SLA = {"critical": "1 hour", "high": "4 hours", "normal": "1 business day", "low": "3 business days"}


def _cue_hits(text: str, stems: set[str], cues: dict[str, int]) -> list[tuple[str, int]]:
    hits = []
    for cue, weight in cues.items():
        found = cue in text if (" " in cue or "'" in cue or "-" in cue) else stem(cue) in stems
        if found:
            hits.append((cue, weight))
    return hits


def _triage_one(ticket: str) -> dict:
    lower = " ".join(ticket.lower().replace("\u2019", "'").split())
    stems = {stem(w) for w in words(ticket)}
    scores: dict[str, tuple[int, list[str]]] = {}
    for topic, cues in TOPICS.items():
        hits = _cue_hits(lower, stems, cues)
        scores[topic] = (sum(w for _, w in hits), [c for c, _ in hits])
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1][0], list(TOPICS).index(kv[0])))
    topic, (top_score, top_cues) = ranked[0]
    total = sum(s for s, _ in scores.values())
    if top_score == 0:
        topic, confidence = "general", 0
    else:
        confidence = round(100 * top_score / total)
    urgency_hits = _cue_hits(lower, stems, URGENCY_CUES)
    shouting = [w for w in re.findall(r"\b[A-Z]{4,}\b", ticket) if w not in {"HTTP", "HTTPS", "JSON", "HTML", "UTC"}]
    urgency_score = sum(w for _, w in urgency_hits) + (1 if "!!" in ticket else 0) + (1 if len(shouting) >= 2 else 0)
    urgency = ("critical" if urgency_score >= 6 else "high" if urgency_score >= 2
               else "low" if urgency_score < 0 else "normal")
    reasons = []
    if top_cues and topic != "general":
        reasons.append(f"topic {topic.replace('_', ' ')}: mentions " + ", ".join(f"\u2018{c}\u2019" for c in top_cues))
    else:
        reasons.append("topic general: no topic vocabulary matched")
    runner_up = ranked[1]
    if topic != "general" and runner_up[1][0] and runner_up[1][0] >= top_score * 0.6:
        reasons.append(f"also looks like {runner_up[0].replace('_', ' ')} ({', '.join(runner_up[1][1])})")
    raising = [c for c, w in urgency_hits if w > 0]
    lowering = [c for c, w in urgency_hits if w < 0]
    if raising:
        reasons.append("urgency raised by " + ", ".join(f"\u2018{c}\u2019" for c in raising))
    if lowering:
        reasons.append("urgency lowered by " + ", ".join(f"\u2018{c}\u2019" for c in lowering))
    if "!!" in ticket:
        reasons.append("urgency raised by repeated exclamation marks")
    if len(shouting) >= 2:
        reasons.append("urgency raised by words in capitals")
    return {"topic": topic, "confidence": confidence, "urgency": urgency, "urgency_score": urgency_score,
            "queue": QUEUES[topic], "respond_within": SLA[urgency], "reasons": reasons}


def triage(input_text: str, context: RunContext) -> AgentResult:
    """Classify each ticket (several may be separated by a line of ---) by topic and urgency, and route it."""
    tickets = [t.strip() for t in re.split(r"^\s*-{3,}\s*$", input_text, flags=re.M) if t.strip()]
    if not tickets:
        raise RuntimeInputError("Paste a ticket to triage (separate several with a line of ---).")
    results = [_triage_one(t) for t in tickets]
    out = []
    for n, (ticket, r) in enumerate(zip(tickets, results), start=1):
        head = f"Ticket {n}: " if len(tickets) > 1 else ""
        first_line = clip(ticket.splitlines()[0], 80)
        out.append(f"{head}\u201c{first_line}\u201d")
        out.append(f"Topic: {r['topic'].replace('_', ' ')} ({r['confidence']}% of topic signals)")
        out.append(f"Urgency: {r['urgency']} \u2192 respond within {r['respond_within']}")
        out.append(f"Route to: {r['queue']}")
        out.append("Why: " + "; ".join(r["reasons"]) + ".")
        out.append("")
    return AgentResult("\n".join(out).rstrip(), {"tickets": results})


# --- lead-score ----------------------------------------------------------------------------

LEAD_ALIASES = {
    "company_size": "employees", "size": "employees", "headcount": "employees", "team_size": "employees",
    "title": "role", "job_title": "role", "position": "role", "timeframe": "timeline", "when": "timeline",
    "pricing_visits": "pricing_page_visits", "visits": "pricing_page_visits", "opens": "email_opens",
    "demo": "demo_requested", "mail": "email", "contact_email": "email",
}
FREE_MAIL = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "gmx.net", "proton.me"}
YES = {"yes", "true", "y", "1", "requested", "booked", "done"}


def _number(value: str) -> int | None:
    """'250' -> 250, '1,200' -> 1200, '1.5k' -> 1500, '$50k' -> 50000, '200-500' -> 200 (the lower end)."""
    match = re.search(r"(\d[\d,]*(?:\.\d+)?)\s*([km])?", value.lower().replace("\u2009", ""))
    if not match:
        return None
    digits, scale = match.group(1).replace(",", ""), match.group(2)
    whole, _, fraction = digits.partition(".")
    number = int(whole) * 1000 + (int(fraction[:3].ljust(3, "0")) if fraction else 0)  # thousandths
    factor = {"k": 1000, "m": 1_000_000}.get(scale or "", 1)
    return number * factor // 1000


def _timeline_months(value: str) -> int | None:
    v = value.lower()
    if re.search(r"\b(asap|now|immediately|this week|this month|urgent)\b", v):
        return 1
    if re.search(r"\b(next month|this quarter|q[1-4]|next quarter)\b", v):
        return 3
    if re.search(r"\b(this year|next year|12 months|h[12])\b", v):
        return 12 if "next year" not in v else 18
    if re.search(r"\b(no timeline|none|unknown|not sure|no plans?)\b", v):
        return None
    match = re.search(r"(\d+)\s*(day|week|month|year)", v)
    if match:
        n, unit = int(match.group(1)), match.group(2)
        return max(1, {"day": n // 30, "week": n // 4, "month": n, "year": n * 12}[unit])
    return None


def lead_score(input_text: str, context: RunContext) -> AgentResult:
    """Score 0..100 from company size, seniority, budget, timeline and engagement; explain every point."""
    f = parse_fields(input_text, aliases=LEAD_ALIASES)
    if not f:
        raise RuntimeInputError(
            "Send the lead's signals, one per line, for example:\nrole: VP of Sales\nemployees: 250\n"
            "budget: $40k\ntimeline: this quarter\ndemo_requested: yes\npricing_page_visits: 3"
        )
    lines: list[tuple[int, str]] = []
    missing: list[str] = []

    employees = _number(f["employees"]) if f.get("employees") else None
    if employees is None:
        missing.append("employees")
    else:
        pts = 25 if employees >= 1000 else 20 if employees >= 200 else 15 if employees >= 50 else 8 if employees >= 10 else 3
        lines.append((pts, f"company size {employees:,} employees"))

    role = f.get("role", "")
    if not role:
        missing.append("role")
    else:
        r = role.lower()
        if re.search(r"\b(student|intern)\b", r):
            pts, why = -10, "student or intern"
        elif re.search(r"\b(ceo|cto|cfo|coo|cmo|cro|cio|chief|founder|co-?founder|owner|president)\b", r):
            pts, why = 25, "C-level or founder"
        elif re.search(r"\b(vp|vice president|head of|svp|evp)\b", r):
            pts, why = 22, "VP or head of a function"
        elif re.search(r"\bdirector\b", r):
            pts, why = 18, "director"
        elif re.search(r"\b(manager|lead|supervisor)\b", r):
            pts, why = 12, "manager"
        else:
            pts, why = 5, "individual contributor"
        lines.append((pts, f"role \u2018{role}\u2019 ({why})"))

    budget = f.get("budget", "")
    if not budget:
        missing.append("budget")
    else:
        b = budget.lower()
        amount = _number(b)
        if re.search(r"\b(no|none|zero|nothing)\b", b) and not amount:
            lines.append((0, "no budget"))
        elif amount:
            pts = 20 if amount >= 50_000 else 15 if amount >= 10_000 else 8
            lines.append((pts, f"budget about {amount:,}"))
        elif re.search(r"\b(approved|allocated|yes|confirmed|signed off)\b", b):
            lines.append((15, "budget approved (amount not given)"))
        else:
            lines.append((0, f"budget \u2018{budget}\u2019 not clear"))

    timeline = f.get("timeline", "")
    if not timeline:
        missing.append("timeline")
    else:
        months = _timeline_months(timeline)
        pts = 0 if months is None else 15 if months <= 1 else 12 if months <= 3 else 8 if months <= 6 else 4 if months <= 12 else 0
        lines.append((pts, f"timeline \u2018{timeline}\u2019" + (f" (~{months} month{'s' if months != 1 else ''})" if months else "")))

    engagement = 0
    reasons = []
    if f.get("demo_requested", "").lower() in YES:
        engagement += 8
        reasons.append("requested a demo (+8)")
    visits = _number(f.get("pricing_page_visits", "")) or 0
    if visits:
        engagement += min(4, 2 * visits)
        reasons.append(f"{visits} pricing page visit{'s' if visits != 1 else ''} (+{min(4, 2 * visits)})")
    opens = _number(f.get("email_opens", "")) or 0
    if opens:
        engagement += min(3, opens)
        reasons.append(f"{opens} email open{'s' if opens != 1 else ''} (+{min(3, opens)})")
    if engagement:
        lines.append((min(15, engagement), "engagement: " + ", ".join(reasons)))
    else:
        missing.append("engagement (demo_requested, pricing_page_visits, email_opens)")

    email = f.get("email", "")
    if "@" in email and email.rsplit("@", 1)[1].lower() in FREE_MAIL:
        lines.append((-5, f"personal email address ({email.rsplit('@', 1)[1].lower()})"))

    score = max(0, min(100, sum(p for p, _ in lines)))
    grade, advice = (("A", "hot: contact within one business day") if score >= 75 else
                     ("B", "warm: book a discovery call this week") if score >= 50 else
                     ("C", "nurture: add to the email sequence") if score >= 25 else
                     ("D", "not now: revisit next quarter"))
    out = [f"Score: {score}/100 \u2014 grade {grade} ({advice})", "", "How the score was built:"]
    out += [f"{p:+d}  {why}" for p, why in lines]
    if missing:
        out += ["", "Missing signals (each could change the score): " + ", ".join(missing)]
    return AgentResult("\n".join(out), {"score": score, "grade": grade,
                                        "points": [{"points": p, "reason": w} for p, w in lines],
                                        "missing": missing})
