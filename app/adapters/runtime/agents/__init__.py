"""The built-in agents: deterministic programs that do real work on text, no model involved.

Each agent is a function `(input_text, context) -> AgentResult`; `AGENTS` maps the
`runtime_ref` of an offering version to it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.adapters.runtime import RunContext


@dataclass(frozen=True)
class AgentResult:
    text: str
    data: dict[str, Any] | None = None


Agent = Callable[[str, RunContext], AgentResult]


def registry() -> dict[str, Agent]:
    from app.adapters.runtime.agents import data, retrieval, scoring, workflow, writing

    return {
        "support-faq": retrieval.support_faq,
        "kb-search": retrieval.kb_search,
        "sales-email": writing.sales_email,
        "summarize": writing.summarize,
        "seo-brief": writing.seo_brief,
        "triage": scoring.triage,
        "lead-score": scoring.lead_score,
        "invoice-extract": data.invoice_extract,
        "csv-clean": data.csv_clean,
        "onboarding": workflow.onboarding,
    }
