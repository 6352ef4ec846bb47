"""The search box's text as a query for either database: web-search syntax ("quoted phrases",
-excluded, or) parsed once into terms, then written as an FTS5 MATCH (SQLite) or a tsquery
(PostgreSQL). The last word typed is a prefix, so results follow the typing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal_column


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False
    negated: bool = False
    prefix: bool = False


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")


def parse_terms(q: str) -> list[list[Term]]:
    """Web-search syntax as OR-groups of AND-ed terms: `a "b c" -d or e` -> [[a, "b c", -d], [e]].

    Words keep only letters and digits (punctuation separates words, as both engines' tokenizers
    do). The last word of the query, when typed as a plain word, is a prefix.
    """
    groups: list[list[Term]] = [[]]
    for match in _TOKEN.finditer(q):
        negated = match.group(1) == "-" if match.group(2) is not None else False
        if match.group(2) is not None:
            words = _WORD.findall(match.group(2))
            if words:
                groups[-1].append(Term(" ".join(words).lower(), phrase=True, negated=negated))
            continue
        raw = match.group(3)
        if raw.lower() == "or":
            if groups[-1]:
                groups.append([])
            continue
        negated = raw.startswith("-") and len(raw) > 1
        words = _WORD.findall(raw)
        if not words:
            continue
        if len(words) > 1:  # e-mail, 3.5: a phrase of its parts, as the engines tokenize it
            groups[-1].append(Term(" ".join(words).lower(), phrase=True, negated=negated))
        else:
            groups[-1].append(Term(words[0].lower(), negated=negated))
    groups = [g for g in groups if g]
    if groups:
        last_token = q.rstrip()
        last = groups[-1][-1]
        typed_plain_word = bool(last_token) and not last_token.endswith('"') and not last.phrase
        if typed_plain_word and not last.negated:
            groups[-1][-1] = Term(last.text, prefix=True)
    return groups


def fts5_match(groups: list[list[Term]]) -> tuple[str | None, str | None]:
    """(positive match, negation-only match) for FTS5; None where there is nothing to match."""
    alternatives, negatives_only = [], []
    for group in groups:
        positive = [t for t in group if not t.negated]
        negative = [t for t in group if t.negated]
        if not positive:
            negatives_only.extend(negative)
            continue
        expr = " AND ".join(_fts5_term(t) for t in positive)
        for t in negative:
            expr = f"({expr}) NOT {_fts5_term(t)}"
        alternatives.append(f"({expr})")
    positive_match = " OR ".join(alternatives) or None
    negative_match = " OR ".join(_fts5_term(t) for t in negatives_only) or None
    return positive_match, negative_match


def _fts5_term(term: Term) -> str:
    quoted = '"' + term.text.replace('"', '""') + '"'
    return quoted + "*" if term.prefix else quoted


def pg_tsquery(groups: list[list[Term]]) -> Any:
    """A tsquery expression: websearch_to_tsquery for everything but a trailing prefix word,
    which is AND-ed as `word:*` (websearch syntax has no prefix operator)."""
    parts = []
    for i, group in enumerate(groups):
        prefix = group[-1] if group[-1].prefix else None
        plain = group[:-1] if prefix else group
        web = " ".join(
            ("-" if t.negated else "") + (f'"{t.text}"' if t.phrase else t.text) for t in plain
        )
        expr = None
        if web:
            expr = func.websearch_to_tsquery(literal_column("'english'::regconfig"), web)
        if prefix is not None:
            # the stemmed prefix ('running' -> 'run':*) or the word as typed, which also keeps a
            # half-typed word that happens to be a stop word ('a', 'the') from matching nothing
            prefix_query = func.to_tsquery(literal_column("'english'::regconfig"), prefix.text + ":*").op("||")(
                func.to_tsquery(literal_column("'simple'::regconfig"), prefix.text + ":*")
            )
            expr = prefix_query if expr is None else expr.op("&&")(prefix_query)
        if expr is not None:
            parts.append(expr)
    query = parts[0]
    for part in parts[1:]:
        query = query.op("||")(part)
    return query
