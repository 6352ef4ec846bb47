"""The built-in runtime: runs the in-process agents named by `runtime_ref`.

Usage units are characters (input plus output), so a plan's per-1k-units price scales with the
amount of text an agent handled. The agents answer in process, so an output that would take the
usage past `max_units` is cut there: the caller is never delivered more than it may pay for.
"""
from __future__ import annotations

import logging
import re
import time

from app.adapters.runtime import (
    RunContext, RunControl, RunOutput, RuntimeDescription, RuntimeFailure, RuntimeReference, TokenCallback,
)

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 200_000

# what sellers read in the version form's list; an agent missing here is named after its reference
AGENT_NAMES = {
    "support-faq": "Support FAQ answers", "kb-search": "Knowledge base search", "sales-email": "Sales email writer",
    "summarize": "Meeting summary", "seo-brief": "SEO brief", "triage": "Ticket triage", "lead-score": "Lead scoring",
    "invoice-extract": "Invoice extraction", "csv-clean": "CSV clean-up", "onboarding": "Onboarding plan",
}


class BuiltinRuntime:
    kind = "builtin"
    unit_name = "characters"
    can_cut_output = True

    def __init__(self, stream_delay: float = 0.0) -> None:
        self.stream_delay = stream_delay  # seconds between streamed words (0: the whole output at once)

    @staticmethod
    def input_units(input_text: str) -> int:
        return len(input_text)

    def list_references(self) -> list[RuntimeReference]:
        from app.adapters.runtime.agents import registry

        found = [RuntimeReference(self.kind, ref, AGENT_NAMES.get(ref, ref)) for ref in registry()]
        return sorted(found, key=lambda r: r.name.lower())

    def describe(self, runtime_ref: str) -> RuntimeDescription | None:
        from app.adapters.runtime.agents import registry

        if runtime_ref not in registry():
            return None
        return RuntimeDescription(self.kind, runtime_ref, AGENT_NAMES.get(runtime_ref, runtime_ref))

    def run(
        self, runtime_ref: str, input_text: str, session_id: str, context: RunContext,
        *, on_token: TokenCallback | None = None, max_units: int | None = None, control: RunControl | None = None,
    ) -> RunOutput:
        from app.adapters.runtime.agents import registry

        agent = registry().get(runtime_ref)
        if agent is None:
            raise RuntimeFailure("This agent is not available in the built-in runtime.",
                                 detail=f"no built-in agent {runtime_ref!r}")
        if len(input_text) > MAX_INPUT_CHARS:
            from app.adapters.runtime import RuntimeInputError

            raise RuntimeInputError(f"The input is too long: at most {MAX_INPUT_CHARS:,} characters.")
        try:
            result = agent(input_text, context)
        except RuntimeFailure:
            raise
        except Exception as exc:  # a bug in an agent must fail the run, not the request
            log.exception("built-in agent %s failed", runtime_ref)
            raise RuntimeFailure("The agent hit an internal error. You were not charged.",
                                 detail=f"{runtime_ref}: {type(exc).__name__}: {exc}") from exc
        text, data, truncated = result.text, result.data, False
        if max_units is not None and len(input_text) + len(text) > max_units:
            # the structured result goes too: it holds what the cut text no longer shows
            text, data, truncated = text[:max(0, max_units - len(input_text))], None, True
        if on_token is not None:
            self._stream(text, on_token, control)
        return RunOutput(
            text=text,
            usage_units=len(input_text) + len(text),
            data=data,
            details={"runtime": self.kind, "agent": runtime_ref, "session_id": session_id},
            truncated=truncated,
        )

    def _stream(self, text: str, on_token: TokenCallback, control: RunControl | None) -> None:
        """Deliver the output: at once, or word by word `stream_delay` apart; a stop ends it there
        (the caller has given the run up: what follows is not delivered, and no late reply is left)."""
        if self.stream_delay <= 0:
            on_token(text)
            return
        for word in re.findall(r"\s*\S+\s*|\s+", text):
            if control is not None and control.stopped:
                raise RuntimeFailure("The run was stopped.", detail="stopped while streaming")
            on_token(word)
            time.sleep(self.stream_delay)
