"""The runtime port: run an agent on some input and report its output and usage.

Two adapters implement it: the built-in runtime (small deterministic agents that run in process)
and Langflow (`POST {LANGFLOW_URL}/api/v1/run/{flow}`). An offering version names its runtime
(`OfferingVersion.runtime_kind`) and what to run there (`runtime_ref`); `get_runtime(kind)` picks
the adapter from the app config. Services call the port, never an adapter module.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

RUNTIME_KINDS = ("builtin", "langflow")


class RuntimeFailure(Exception):
    """The runtime could not produce an output.

    `str(exc)` is safe to show the person who ran the agent; `detail` is for the logs only
    (it may name hosts, status codes or bodies from the runtime).
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class RuntimeTimeout(RuntimeFailure):
    """The runtime did not answer within its time limit."""


class RuntimeInputError(RuntimeFailure):
    """The input cannot be processed as given; the message says what to change."""


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class Document:
    title: str
    body: str


@dataclass(frozen=True)
class RunContext:
    """What an agent may read besides its input: the offering's FAQ, the instance's documents, today."""

    offering_name: str = ""
    faq: tuple[FaqEntry, ...] = ()
    documents: tuple[Document, ...] = ()
    today: date | None = None
    tweaks: dict[str, Any] | None = None  # Langflow component overrides
    output_component: str | None = None  # Langflow: which output to read when a flow has several


@dataclass(frozen=True)
class RunOutput:
    text: str
    usage_units: int  # what the plan's per-1k-units price applies to (tokens, or characters for built-ins)
    data: dict[str, Any] | None = None  # structured result, when the agent has one
    details: dict[str, Any] = field(default_factory=dict)  # e.g. token usage as reported
    truncated: bool = False  # the output was cut to stay within `max_units`


TokenCallback = Callable[[str], None]


class Runtime(Protocol):
    kind: str
    unit_name: str  # what its usage units count, in words ("characters", "tokens")
    can_cut_output: bool  # whether `run` honours `max_units` by cutting the output

    def run(
        self, runtime_ref: str, input_text: str, session_id: str, context: RunContext,
        *, on_token: TokenCallback | None = None, max_units: int | None = None,
    ) -> RunOutput:
        """Run `runtime_ref` on `input_text`; raise RuntimeFailure, RuntimeTimeout or RuntimeInputError.

        With `max_units`, a runtime that can cut its output (`can_cut_output`) stops where the usage
        reaches `max_units` and says so with `RunOutput.truncated`; one that cannot reports its whole
        usage, which may exceed it."""
        ...


@dataclass(frozen=True)
class UsageTerms:
    """How a runtime counts usage, known before a run starts: its unit, whether it can cut an output
    at a usage limit, and how many units the input alone will count for."""

    unit_name: str
    can_cut_output: bool
    input_units: int  # exact where the runtime counts the input itself; 0 where it cannot be known


def usage_terms(kind: str, input_text: str) -> UsageTerms:
    """The usage terms of runtime `kind` for `input_text`, without configuring or calling the runtime."""
    if kind == "builtin":
        from app.adapters.runtime.builtin import BuiltinRuntime

        return UsageTerms(BuiltinRuntime.unit_name, BuiltinRuntime.can_cut_output,
                          BuiltinRuntime.input_units(input_text))
    if kind == "langflow":
        from app.adapters.runtime.langflow import LangflowRuntime

        return UsageTerms(LangflowRuntime.unit_name, LangflowRuntime.can_cut_output,
                          LangflowRuntime.input_units(input_text))
    raise RuntimeFailure("This agent's runtime is not available.", detail=f"unknown runtime kind {kind!r}")


_local = threading.local()


def _thread_http():
    """One HTTP session per thread, kept: its connections to the runtime stay open between runs (a new
    TCP connection per run costs more than the gateway's own work). Sessions are not shared between
    threads; a pooled connection the server closed while idle is replaced before it is used."""
    session = getattr(_local, "http", None)
    if session is None:
        import requests

        session = _local.http = requests.Session()
    return session


def get_runtime(kind: str, config: dict[str, Any] | None = None) -> Runtime:
    """The adapter for `kind` ("builtin" or "langflow"), configured from `config` or the current app."""
    if kind == "builtin":
        from app.adapters.runtime.builtin import BuiltinRuntime

        return BuiltinRuntime()
    if kind == "langflow":
        from app.adapters.runtime.langflow import LangflowRuntime

        if config is None:
            from flask import current_app

            config = current_app.config
        return LangflowRuntime(
            base_url=config.get("LANGFLOW_URL", ""),
            api_key=config.get("LANGFLOW_API_KEY", ""),
            timeout=float(config.get("LANGFLOW_TIMEOUT", 30.0)),
            http=_thread_http(),
        )
    raise RuntimeFailure("This agent's runtime is not available.", detail=f"unknown runtime kind {kind!r}")
