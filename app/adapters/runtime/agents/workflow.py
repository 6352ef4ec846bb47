"""Workflow agents: a dated onboarding checklist counted in working days."""
from __future__ import annotations

import re
from datetime import date, timedelta

from app.adapters.runtime import RunContext, RuntimeInputError
from app.adapters.runtime.agents import AgentResult
from app.adapters.runtime.agents.data import parse_date
from app.adapters.runtime.agents.textkit import parse_fields

ONBOARDING_ALIASES = {"start": "start_date", "starts": "start_date", "first_day": "start_date", "date": "start_date",
                      "title": "role", "department": "team", "new_hire": "name", "employee": "name",
                      "mentor": "buddy", "remote": "location"}

# (working days from the start day, owner, task); the start day is day 0
BASE_TASKS = [
    (-5, "HR", "Send the contract and collect signed paperwork"),
    (-5, "IT", "Order the laptop and accessories"),
    (-3, "Manager", "Write the 30-60-90 day plan"),
    (-2, "IT", "Create email, chat and single sign-on accounts"),
    (-2, "Manager", "Brief the buddy on the first two weeks"),
    (-1, "HR", "Send the welcome email with the first-day schedule"),
    (0, "Manager", "Welcome meeting and team introductions"),
    (0, "IT", "Hand over the laptop and check every sign-in works"),
    (0, "Buddy", "First-day lunch or coffee"),
    (1, "New hire", "Complete security and compliance training"),
    (2, "Manager", "Agree the goals for the first week"),
    (4, "Manager", "End-of-week-one check-in"),
    (9, "Buddy", "Two-week check-in"),
    (19, "HR", "30-day survey"),
    (19, "Manager", "30-day review against the plan"),
]
ROLE_TASKS = {
    "engineering": (r"engineer|developer|devops|sre|programmer|software|data scientist", [
        (0, "IT", "Grant repository, CI and cloud console access"),
        (2, "New hire", "Set up the development environment and run the test suite"),
        (4, "New hire", "Ship a first small change with the buddy reviewing"),
    ]),
    "sales": (r"sales|account executive|sdr|bdr|account manager", [
        (0, "IT", "Grant CRM access"),
        (2, "New hire", "Shadow three customer calls"),
        (9, "Manager", "First pipeline review"),
    ]),
    "support": (r"support|customer success|service desk|help ?desk", [
        (0, "IT", "Grant help desk access"),
        (2, "New hire", "Shadow the ticket queue for a day"),
        (7, "New hire", "Answer first tickets with review"),
    ]),
    "marketing": (r"marketing|content|seo|brand|growth", [
        (0, "IT", "Grant access to the CMS and analytics"),
        (3, "New hire", "Review the brand guide and last quarter's campaigns"),
    ]),
    "finance": (r"finance|accountant|controller|payroll|bookkeep", [
        (0, "IT", "Grant access to the accounting system"),
        (3, "New hire", "Walk through the month-end close checklist"),
    ]),
}


def add_working_days(start: date, days: int) -> date:
    """Move `days` working days (Mon-Fri) from `start`; negative goes back."""
    step = 1 if days >= 0 else -1
    current, remaining = start, abs(days)
    while remaining:
        current += timedelta(days=step)
        if current.weekday() < 5:
            remaining -= 1
    return current


def onboarding(input_text: str, context: RunContext) -> AgentResult:
    """A checklist for HR, IT, the manager, the buddy and the new hire, dated in working days."""
    f = parse_fields(input_text, aliases=ONBOARDING_ALIASES)
    if not f.get("start_date"):
        raise RuntimeInputError(
            "Give at least the start date, one field per line, for example:\nname: Jamie Rivera\n"
            "role: Backend Engineer\nteam: Payments\nstart_date: 2026-03-02\nmanager: Priya\nbuddy: Tom"
        )
    start, warning = parse_date(f["start_date"])
    if start is None:
        raise RuntimeInputError(f"\u2018{f['start_date']}\u2019 is not a date I can read. Use YYYY-MM-DD.")
    notes = [warning] if warning else []
    if start.weekday() >= 5:
        moved = start + timedelta(days=7 - start.weekday())
        notes.append(f"{start:%A %d %b %Y} is a weekend day, so the first day is moved to {moved:%A %d %b %Y}.")
        start = moved
    name = f.get("name", "the new hire")
    role, team = f.get("role", ""), f.get("team", "")
    remote = bool(re.search(r"\b(remote|home|yes|true)\b", f.get("location", ""), re.I))
    names = {"Manager": f.get("manager"), "Buddy": f.get("buddy"), "New hire": f.get("name")}

    tasks = list(BASE_TASKS)
    matched = []
    for track, (pattern, extra) in ROLE_TASKS.items():
        if re.search(pattern, f"{role} {team}", re.I):
            tasks += extra
            matched.append(track)
    if remote:
        tasks = [(d, o, t.replace("Order the laptop and accessories", "Order the laptop and ship it to the home address")
                  .replace("Hand over the laptop and check every sign-in works", "Video call to check every sign-in works")
                  .replace("First-day lunch or coffee", "First-day video coffee")) for d, o, t in tasks]
    tasks.sort(key=lambda t: (t[0], ["HR", "IT", "Manager", "Buddy", "New hire"].index(t[1])))

    today = context.today or date.today()
    items = []
    for offset, owner, task in tasks:
        due = add_working_days(start, offset)
        who = f"{owner} ({names[owner]})" if names.get(owner) else owner
        items.append({"due": due.isoformat(), "day": offset, "owner": who, "task": task, "overdue": due < today})
    header = f"Onboarding checklist for {name}" + (f", {role}" if role else "") + (f" ({team})" if team else "")
    out = [header, f"First day: {start:%A %d %b %Y}" + (" \u00b7 remote" if remote else ""), ""]
    current = None
    for item in items:
        if item["due"] != current:
            current = item["due"]
            day = item["day"]
            label = "first day" if day == 0 else (f"{-day} working day{'s' if day < -1 else ''} before" if day < 0
                                                  else f"working day {day + 1}")
            out.append(f"{date.fromisoformat(current):%a %d %b %Y} ({label})")
        out.append(f"  [ ] {item['owner']}: {item['task']}" + ("  \u2014 overdue" if item["overdue"] else ""))
    overdue = sum(1 for i in items if i["overdue"])
    if overdue:
        notes.append(f"{overdue} task{'s are' if overdue > 1 else ' is'} already past due as of {today:%d %b %Y}.")
    if not matched:
        notes.append("No role-specific tasks: add a role such as engineer, sales, support, marketing or finance.")
    notes.append("Working days skip weekends; public holidays are not taken into account.")
    out += [""] + [f"Note: {n}" for n in notes]
    return AgentResult("\n".join(out), {"start_date": start.isoformat(), "tracks": matched, "items": items,
                                        "notes": notes})
