"""Text tools shared by the built-in agents: tokens, a light stemmer, sentences, BM25, input fields."""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from app.adapters.runtime import RuntimeInputError

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can cannot could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my myself
no nor not of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves s t d ll m re
ve don didn doesn isn wasn weren won wouldn shouldn couldn hasn haven hadn aren let us may might must shall
get got please thanks thank hi hello dear regards
""".split())

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
# abbreviations whose dot does not end a sentence
_ABBREVIATIONS = (" e.g.", " i.e.", " etc.", " vs.", " mr.", " mrs.", " ms.", " dr.", " inc.", " ltd.", " no.")


@lru_cache(maxsize=65536)  # words repeat a lot: a document's vocabulary is small next to its length
def stem(word: str) -> str:
    """A light suffix stripper: enough to match password/passwords, charged/charges, resetting/reset."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, replacement in (("ies", "y"), ("ied", "y")):
        if word.endswith(suffix) and len(word) > 4:
            return word[: -len(suffix)] + replacement
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    else:
        if word.endswith(("sses", "xes", "ches", "shes", "zes")):
            word = word[:-2]
        elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case word tokens, apostrophes folded ("can't" -> "can", "t")."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def terms(text: str) -> list[str]:
    """Stemmed content words: the unit of retrieval."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def sentences(text: str) -> list[str]:
    """Split prose into sentences; line breaks that end a line of notes also end a sentence."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)|\n", text):
        block = " ".join(block.split())
        if not block:
            continue
        merged: list[str] = []
        for piece in _SENTENCE_END.split(block):
            if merged and (" " + merged[-1].lower()).endswith(_ABBREVIATIONS):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out.extend(merged)
    return out


class BM25:
    """Okapi BM25 over pre-tokenized documents (k1=1.5, b=0.75)."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.avg_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        frequency: Counter[str] = Counter()
        for doc in self.docs:
            frequency.update(doc.keys())
        n = len(self.docs)
        self.idf = {term: math.log((n - df + 0.5) / (df + 0.5) + 1.0) for term, df in frequency.items()}
        # a term no document has counts as much as the rarest term that some document has
        self.unseen_idf = math.log((n - 0.5) / 1.5 + 1.0) if n else 1.0

    def score(self, query: Sequence[str], index: int) -> float:
        doc, length = self.docs[index], self.lengths[index]
        total = 0.0
        for term in set(query):
            tf = doc.get(term, 0)
            if not tf:
                continue
            norm = tf + self.k1 * (1 - self.b + self.b * length / (self.avg_length or 1.0))
            total += self.idf[term] * tf * (self.k1 + 1) / norm
        return total

    def rank(self, query: Sequence[str]) -> list[tuple[int, float]]:
        """(document index, score) for every document with a positive score, best first, ties by index."""
        scored = [(i, self.score(query, i)) for i in range(len(self.docs))]
        return sorted(((i, s) for i, s in scored if s > 0), key=lambda pair: (-pair[1], pair[0]))

    def coverage(self, query: Sequence[str], index: int) -> float:
        """Share of the query's information (idf-weighted terms) that the document contains, 0..1."""
        wanted = set(query)
        if not wanted:
            return 0.0
        weight = {t: self.idf.get(t, self.unseen_idf) for t in wanted}
        found = sum(w for t, w in weight.items() if t in self.docs[index])
        return found / sum(weight.values())


def parse_fields(text: str, *, aliases: dict[str, str] | None = None) -> dict[str, str]:
    """Fields from a JSON object or from `name: value` lines; keys lower-cased, spaces to underscores.

    `aliases` maps other spellings to the canonical key (e.g. "title" -> "role").
    """
    text = text.strip()
    fields: dict[str, str] = {}
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuntimeInputError(f"The input looks like JSON but is not valid JSON ({exc.msg}, line {exc.lineno}).") from exc
        if not isinstance(raw, dict):
            raise RuntimeInputError("Send a JSON object with one key per field.")
        items = [(str(k), v) for k, v in raw.items()]
        for key, value in items:
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            fields[_field_key(key)] = "" if value is None else str(value).strip()
    else:
        for line in text.splitlines():
            match = re.match(r"\s*[-*]?\s*([A-Za-z][A-Za-z0-9 _-]{0,40}?)\s*[:=]\s*(.*)$", line)
            if match:
                fields[_field_key(match.group(1))] = match.group(2).strip()
    if aliases:
        for alias, canonical in aliases.items():
            if alias in fields and not fields.get(canonical):
                fields[canonical] = fields.pop(alias)
    return {k: v for k, v in fields.items() if v}


def _field_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def clip(text: str, limit: int) -> str:
    """Shorten to at most `limit` characters at a word boundary, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


def percent(part: float, whole: float) -> int:
    return int(round(100 * part / whole)) if whole else 0
