"""Writing agents: a first-touch sales email, meeting-notes summaries, SEO briefs."""
from __future__ import annotations

import math
import re
from collections import Counter

from app.adapters.runtime import RunContext, RuntimeInputError
from app.adapters.runtime.agents import AgentResult
from app.adapters.runtime.agents.textkit import STOPWORDS, clip, parse_fields, sentences, stem, terms, words

# --- sales-email ---------------------------------------------------------------------------

SALES_ALIASES = {
    "first_name": "name", "contact": "name", "lead": "name", "organization": "company", "org": "company",
    "account": "company", "title": "role", "job_title": "role", "position": "role", "pain_point": "pain",
    "problem": "pain", "challenge": "pain", "from": "sender", "signature": "sender", "offer": "product",
}
_EXEC = re.compile(r"\b(ceo|cto|cfo|coo|cmo|cro|cio|ciso|chief|founder|co-?founder|owner|president|vp|vice president|head of|partner)\b", re.I)
_MANAGER = re.compile(r"\b(director|manager|lead|supervisor|team lead|principal)\b", re.I)
PAIN_KINDS = {
    "time": ("manual", "slow", "time", "hours", "spreadsheet", "repetitive", "copy", "backlog", "busywork", "delay"),
    "cost": ("cost", "expensive", "budget", "spend", "overhead", "price", "waste"),
    "growth": ("pipeline", "lead", "revenue", "growth", "conversion", "sales", "signup", "churn"),
    "quality": ("error", "mistake", "quality", "complaint", "inconsistent", "accuracy", "rework", "bug"),
}
VALUE_LINES = {
    "time": "it takes the repetitive part of {pain} off the team's plate, so people spend their hours on work that needs them",
    "cost": "it brings down what {pain} costs you, without adding headcount or another tool to manage",
    "growth": "it helps turn {pain} around by giving your team more of the right conversations each week",
    "quality": "it catches the causes of {pain} early, so fewer problems reach your customers",
    "general": "it is built for teams dealing with {pain}, and most see a difference in the first month",
}


def _pain_kind(pain: str) -> str:
    tokens = {stem(w) for w in words(pain)}
    for kind, cues in PAIN_KINDS.items():
        if tokens & {stem(c) for c in cues}:
            return kind
    return "general"


def _seniority(role: str) -> str:
    if _EXEC.search(role):
        return "executive"
    if _MANAGER.search(role):
        return "manager"
    return "practitioner" if role else "unknown"


def sales_email(input_text: str, context: RunContext) -> AgentResult:
    """Draft a first-touch email from `name`, `company` and optional `role`, `pain`, `product`, `sender`."""
    fields = parse_fields(input_text, aliases=SALES_ALIASES)
    missing = [f for f in ("name", "company") if not fields.get(f)]
    if missing:
        raise RuntimeInputError(
            "Missing " + " and ".join(missing) + ". Send one field per line, for example:\n"
            "name: Ada Lovelace\ncompany: Analytical Engines\nrole: Head of Operations\n"
            "pain: manual invoice processing\nproduct: Invoice Data Extractor\nsender: Sam"
        )
    first = fields["name"].split()[0]
    company, role = fields["company"], fields.get("role", "")
    pain = fields.get("pain", "").rstrip(".").strip()
    product = fields.get("product") or context.offering_name or "our product"
    seniority, kind = _seniority(role), _pain_kind(pain) if pain else "general"
    pain_phrase = pain[0].lower() + pain[1:] if pain else ""

    if pain:
        subject = {
            "time": f"Hours back from {pain_phrase} at {company}",
            "cost": f"Lowering the cost of {pain_phrase} at {company}",
            "growth": f"An idea for {company}: {pain_phrase}",
            "quality": f"Fewer {pain_phrase} issues at {company}" if len(pain_phrase) < 25 else f"{company}: {pain_phrase}",
            "general": f"{company} and {pain_phrase}",
        }[kind]
    else:
        subject = f"A quick idea for {company}"
    subject = clip(subject, 70)

    if seniority == "executive":
        opening = (f"As {role} at {company}, you are likely weighing where {pain_phrase} costs the business most."
                   if pain else f"As {role} at {company}, you see where time and money go across the business.")
        ask = f"Would a 15-minute call next week be worth it to see whether the numbers work for {company}?"
    elif seniority == "manager":
        opening = (f"Teams run by a {role} often tell us that {pain_phrase} eats into every week."
                   if pain else f"As {role} at {company}, you probably have more on the team's list than hours to do it.")
        ask = "Could I show you and your team a 20-minute walkthrough next week?"
    else:
        opening = (f"I understand {pain_phrase} is taking up time at {company}." if pain
                   else f"I am reaching out because teams like yours at {company} use {product} day to day.")
        ask = "Would it help if I sent over a short example built around how you work today?"
    value = f"That is where {product} helps: " + VALUE_LINES[kind].format(pain=pain_phrase or "the work you described") + "."
    sign = fields.get("sender", "")
    body = "\n\n".join([
        f"Hi {first},", opening, value[0].upper() + value[1:], ask,
        "Best regards," + (f"\n{sign}" if sign else ""),
    ])
    used = [f for f in ("name", "company", "role", "pain", "product", "sender") if fields.get(f)]
    tips = [f"add `{f}: …` to make it more specific" for f in ("role", "pain", "sender") if not fields.get(f)]
    text = f"Subject: {subject}\n\n{body}"
    footer = f"\n\n---\n{len(words(body))} words \u00b7 tone: {seniority if seniority != 'unknown' else 'neutral'} \u00b7 fields used: {', '.join(used)}"
    if tips:
        footer += "\nTip: " + "; ".join(tips) + "."
    return AgentResult(text + footer, {"subject": subject, "body": body, "fields_used": used,
                                       "tone": seniority, "angle": kind})


# --- summarize -----------------------------------------------------------------------------

_DECISION = re.compile(
    r"\b(decided|decision|agreed|agree to|approved|go with|going with|settled on|chose|chosen|resolved to|will use|signed off)\b",
    re.I,
)
_NOT_NAMES = {"we", "i", "it", "this", "that", "they", "he", "she", "you", "the", "team", "everyone", "someone",
              "nobody", "there", "which", "who", "action", "todo", "next", "decision", "note", "also", "then"}
_OWNER_PATTERNS = [
    re.compile(r"^(?:action(?: item)?|todo|ai|task)\s*(?:\(([^)]+)\))?\s*[:\-]\s*(?:@?([A-Z][\w.'-]+)\s*(?:[:\-]|to|will|should|needs to)\s+)?(.+)$", re.I),
    re.compile(r"^@?([A-Z][\w'-]+(?: [A-Z][\w'-]+)?)\s*(?:will|to|should|needs to|is going to|has to|must)\s+(.+)$"),
    re.compile(r"^@([\w.'-]+)\s*[:,]?\s*(.+)$"),
    re.compile(r"^(?:\[ \]|- \[ \])\s*(.+)$"),
]
_DUE = re.compile(
    r"\b(?:by|before|due|until)\s+((?:next\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|tomorrow|today|tonight|"
    r"end of (?:the )?(?:day|week|month|quarter)|eod|eow|next week|next month|\d{4}-\d{2}-\d{2}|"
    r"\d{1,2}(?:st|nd|rd|th)?\s+[A-Z][a-z]+|[A-Z][a-z]+\s+\d{1,2}(?:st|nd|rd|th)?)",
    re.I,
)


def _action_item(line: str) -> dict[str, str] | None:
    text = line.strip().lstrip("-*\u2022 ").strip()
    owner, task = None, None
    match = _OWNER_PATTERNS[0].match(text)
    if match:
        owner = match.group(1) or match.group(2)
        task = match.group(3)
    else:
        for pattern in _OWNER_PATTERNS[1:3]:
            match = pattern.match(text)
            if match and match.group(1).split()[0].lower() not in _NOT_NAMES:
                owner, task = match.group(1), match.group(2)
                break
        else:
            match = _OWNER_PATTERNS[3].match(line.strip())
            if match:
                task = match.group(1)
    if not task:
        return None
    due = _DUE.search(task)
    if due:
        task = (task[: due.start()] + task[due.end():])
    task = " ".join(task.split()).rstrip(".,; ")
    if owner:
        owner = owner.strip().lstrip("@")
        owner = owner[0].upper() + owner[1:]
    item = {"owner": owner or "unassigned", "task": task[0].upper() + task[1:] if task else task}
    if due:
        item["due"] = due.group(1)
    return item


def summarize(input_text: str, context: RunContext) -> AgentResult:
    """Extractive summary (term-frequency sentence scores), decisions, action items with owners and dates."""
    text = input_text.strip()
    if len(words(text)) < 8:
        raise RuntimeInputError("Paste the meeting notes or transcript: at least a couple of sentences.")
    lines = [l for l in text.splitlines() if l.strip()]
    actions: list[dict[str, str]] = []
    action_lines: set[str] = set()
    for line in lines:
        for part in [line] if len(sentences(line)) <= 1 else sentences(line):
            item = _action_item(part)
            if item:
                actions.append(item)
                action_lines.add(" ".join(part.split()))
    all_sentences = sentences(text)
    decisions = [s for s in all_sentences if _DECISION.search(s) and " ".join(s.split()) not in action_lines]
    candidates = [s for s in all_sentences if s not in decisions and " ".join(s.split()) not in action_lines]
    frequency = Counter(t for s in all_sentences for t in terms(s))
    top = max(frequency.values()) if frequency else 1

    def score(position: int, sentence: str) -> float:
        tokens = terms(sentence)
        if len(tokens) < 3:
            return 0.0
        weight = sum(frequency[t] / top for t in set(tokens)) / math.sqrt(len(tokens))
        return weight + (0.15 if position == 0 else 0.0)

    count = min(5, max(1, math.ceil(len(candidates) / 3)))
    ranked = sorted(enumerate(candidates), key=lambda p: (-score(*p), p[0]))[:count]
    summary = [s for _, s in sorted(ranked)]
    out = ["Summary:"] + [f"- {s}" for s in summary or ["(The notes are all decisions and action items.)"]]
    out += ["", "Decisions:"] + ([f"- {d}" for d in decisions] or ["- None recorded."])
    out += ["", "Action items:"]
    if actions:
        for a in actions:
            out.append(f"- [{a['owner']}] {a['task']}" + (f" (due {a['due']})" if a.get("due") else ""))
    else:
        out.append("- None found. Write them as 'Name will …' or 'Action: Name to …' to have them picked up.")
    unassigned = sum(1 for a in actions if a["owner"] == "unassigned")
    if unassigned:
        out += ["", f"Note: {unassigned} action item{'s have' if unassigned > 1 else ' has'} no owner yet."]
    return AgentResult("\n".join(out), {"summary": summary, "decisions": decisions, "action_items": actions})


# --- seo-brief -----------------------------------------------------------------------------

def _syllables(word: str) -> int:
    word = word.lower()
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups)
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(1, count)


def seo_brief(input_text: str, context: RunContext) -> AgentResult:
    """Key terms (unigrams and bigrams), a title, meta description, outline, readability and gaps."""
    text = input_text.strip()
    body_words = words(re.sub(r"^#+\s.*$", "", text, flags=re.M))
    if len(body_words) < 30:
        raise RuntimeInputError("Paste a draft or page text of at least 30 words to build a brief from.")
    headings = [(len(m.group(1)), m.group(2).strip()) for m in re.finditer(r"^(#{1,4})\s+(.+)$", text, flags=re.M)]
    prose = re.sub(r"^#+\s.*$", "", text, flags=re.M)
    sents = sentences(prose)

    surface: dict[str, Counter[str]] = {}
    unigram: Counter[str] = Counter()
    bigram: Counter[tuple[str, str]] = Counter()
    for sentence in sents:
        previous: str | None = None
        for w in words(sentence):
            if w in STOPWORDS or len(w) < 3 or w.isdigit():
                previous = None
                continue
            s = stem(w)
            unigram[s] += 1
            surface.setdefault(s, Counter())[w] += 1
            if previous:
                bigram[(previous, s)] += 1
            previous = s

    def show(s: str) -> str:
        return surface[s].most_common(1)[0][0]

    scored = [(" ".join(show(p) for p in pair), n * 2.5, n, pair) for pair, n in bigram.items() if n >= 2]
    scored += [(show(s), float(n), n, (s,)) for s, n in unigram.items() if n >= 2]
    scored.sort(key=lambda t: (-t[1], t[0]))
    key_terms, covered = [], set()
    for label, _, n, parts in scored:
        if len(parts) == 1 and parts[0] in covered and unigram[parts[0]] <= 2 * max(
                (bigram[p] for p in bigram if parts[0] in p), default=0):
            continue  # a word that mostly appears inside a chosen phrase adds nothing
        key_terms.append({"term": label, "count": n, "density": f"{100 * n / len(body_words):.1f}%"})
        covered.update(parts)
        if len(key_terms) == 8:
            break
    if not key_terms:
        key_terms = [{"term": show(s), "count": n, "density": f"{100 * n / len(body_words):.1f}%"}
                     for s, n in unigram.most_common(5)]
    lead = key_terms[0]["term"]
    title = clip(f"{lead.title()}: A Practical Guide" if " " in lead else f"{lead.title()}: What You Need to Know", 60)
    meta = clip(" ".join(sents[:2]), 155) if sents else ""

    heading_terms = {t for _, h in headings for t in terms(h)}
    missing = [k["term"] for k in key_terms[:5] if not set(terms(k["term"])) <= heading_terms]
    if headings:
        outline = [f"{'  ' * (level - 1)}H{level}: {h}" for level, h in headings]
        outline += [f"  H2 (add): {t.capitalize()} explained" for t in missing[:3]]
    else:
        second = key_terms[1]["term"] if len(key_terms) > 1 else lead
        outline = [f"H1: {title}", f"  H2: What is {lead}?", f"  H2: Why {lead} matters",
                   f"  H2: How to get started with {second}"]
        outline += [f"  H2: {k['term'].capitalize()} explained" for k in key_terms[2:4]]
        outline += ["  H2: Frequently asked questions", "  H2: Next steps"]

    n_words, n_sents = len(body_words), max(1, len(sents))
    syllables = sum(_syllables(w) for w in body_words)
    flesch = 206.835 - 1.015 * (n_words / n_sents) - 84.6 * (syllables / n_words)
    grade = ("very easy" if flesch >= 80 else "easy" if flesch >= 70 else "plain English" if flesch >= 60
             else "fairly difficult" if flesch >= 50 else "difficult")
    long_sentences = [s for s in sents if len(words(s)) > 25]
    gaps = []
    if n_words < 300:
        gaps.append(f"Only {n_words} words: pages that rank for competitive terms usually run 800+ words.")
    if long_sentences:
        gaps.append(f"{len(long_sentences)} sentence{'s' if len(long_sentences) > 1 else ''} over 25 words: split them.")
    if headings and missing:
        gaps.append("Key terms missing from headings: " + ", ".join(missing[:3]) + ".")
    if not headings:
        gaps.append("No headings found: add an H1 and H2 sections (outline below).")

    out = [f"Suggested title: {title}", f"Meta description: {meta}", "", "Key terms:"]
    out += [f"- {k['term']} \u00d7{k['count']} ({k['density']})" for k in key_terms]
    out += ["", "Outline:"] + outline
    out += ["", "Readability:", f"- {n_words} words, {len(sents)} sentences, {n_words / n_sents:.1f} words per sentence",
            f"- Flesch reading ease {flesch:.0f} ({grade})"]
    out += ["", "Gaps:"] + ([f"- {g}" for g in gaps] or ["- None found."])
    return AgentResult("\n".join(out), {
        "title": title, "meta_description": meta, "key_terms": key_terms, "outline": outline,
        "readability": {"words": n_words, "sentences": len(sents), "flesch": round(flesch)}, "gaps": gaps,
    })
