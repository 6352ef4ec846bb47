"""Retrieval agents: answer from the offering's FAQ (support-faq) and search the buyer's documents (kb-search)."""
from __future__ import annotations

import re

from app.adapters.runtime import RunContext, RuntimeInputError
from app.adapters.runtime.agents import AgentResult
from app.adapters.runtime.agents.textkit import BM25, clip, percent, sentences, terms

# share of the question's (idf-weighted) terms an FAQ entry must contain before we answer with it
CONFIDENT = 0.6
POSSIBLE = 0.3


def _question(input_text: str) -> tuple[str, list[str]]:
    question = " ".join(input_text.split())
    if not question:
        raise RuntimeInputError("Type a question for the agent to answer.")
    query = terms(question)
    if not query:
        raise RuntimeInputError("Ask with a few more specific words: the question has no searchable terms.")
    return question, query


def support_faq(input_text: str, context: RunContext) -> AgentResult:
    """Rank FAQ entries with BM25 over question (counted twice) + answer; answer only when confident."""
    question, query = _question(input_text)
    faq = [entry for entry in context.faq if entry.question.strip() and entry.answer.strip()]
    if not faq:
        return AgentResult(
            "This agent has no FAQ entries yet, so it cannot answer. The publisher needs to add some.",
            {"answered": False, "confidence": 0, "matches": []},
        )
    index = BM25([terms(e.question) * 2 + terms(e.answer) for e in faq])
    ranked = index.rank(query)
    matches = [
        {"question": faq[i].question, "answer": faq[i].answer, "score": round(score, 3),
         "confidence": percent(index.coverage(query, i), 1)}
        for i, score in ranked[:3]
    ]
    best = matches[0] if matches else None
    if best and best["confidence"] >= percent(CONFIDENT, 1):
        level = "high" if best["confidence"] >= 80 else "medium"
        lines = [best["answer"], "", f"Source: FAQ \u2014 \u201c{best['question']}\u201d",
                 f"Confidence: {level} ({best['confidence']}% of your question matched)"]
        related = [m["question"] for m in matches[1:] if m["confidence"] >= percent(POSSIBLE, 1)]
        if related:
            lines += ["", "Related questions:"] + [f"- {q}" for q in related]
        return AgentResult("\n".join(lines), {"answered": True, "confidence": best["confidence"], "matches": matches})
    lines = ["I am not confident the FAQ answers this, so I will not guess."]
    close = [m for m in matches if m["confidence"] >= percent(POSSIBLE, 1)] or matches[:2]
    if close:
        lines += ["", "The closest entries are:"] + [
            f"- \u201c{m['question']}\u201d ({m['confidence']}% match)" for m in close
        ]
    lines += ["", "Please pass this question to a person on the support team."]
    return AgentResult("\n".join(lines), {"answered": False, "confidence": best["confidence"] if best else 0,
                                          "matches": matches})


def _passages(body: str, size: int = 3) -> list[str]:
    """Paragraphs, with long ones cut into windows of `size` sentences."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        parts = sentences(paragraph)
        if not parts:
            continue
        if len(parts) <= size + 1:
            out.append(" ".join(parts))
        else:
            out.extend(" ".join(parts[i:i + size]) for i in range(0, len(parts), size))
    return out


def kb_search(input_text: str, context: RunContext) -> AgentResult:
    """BM25 over passages of the instance's documents (the title counts with each passage); quote the best."""
    question, query = _question(input_text)
    passages: list[tuple[str, str]] = [
        (doc.title, passage) for doc in context.documents for passage in _passages(doc.body)
    ]
    if not passages:
        return AgentResult(
            "There are no documents in this instance yet. Add documents on the instance page, then ask again.",
            {"answered": False, "results": []},
        )
    index = BM25([terms(title) + terms(passage) for title, passage in passages])
    ranked = index.rank(query)
    results, seen_titles = [], {}
    for i, score in ranked:
        title, passage = passages[i]
        if seen_titles.get(title, 0) >= 2:  # at most two passages per document, so others get a say
            continue
        seen_titles[title] = seen_titles.get(title, 0) + 1
        results.append({"document": title, "passage": passage, "score": round(score, 3),
                        "coverage": percent(index.coverage(query, i), 1)})
        if len(results) == 3:
            break
    if not results:
        return AgentResult(
            f"None of the {len({t for t, _ in passages})} documents mention what you asked about. "
            "Try other words, or add a document that covers it.",
            {"answered": False, "results": []},
        )
    best = results[0]
    lines = [f"Best match \u2014 \u201c{best['document']}\u201d ({best['coverage']}% of your question):",
             f"  \u201c{clip(best['passage'], 400)}\u201d"]
    if best["coverage"] < percent(POSSIBLE, 1) * 2:
        lines.append("  (Only part of your question is covered by this passage.)")
    if len(results) > 1:
        lines += ["", "Also relevant:"]
        lines += [f"{n}. \u201c{r['document']}\u201d: \u201c{clip(r['passage'], 200)}\u201d"
                  for n, r in enumerate(results[1:], start=2)]
    return AgentResult("\n".join(lines), {"answered": True, "results": results})
