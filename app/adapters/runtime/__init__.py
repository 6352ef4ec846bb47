"""The runtime port: run an agent on some input and report its output and usage.

Two adapters implement it: the built-in runtime (small deterministic agents that run in process)
and Langflow (`POST {LANGFLOW_URL}/api/v1/run/{flow}`). An offering version names its runtime
(`OfferingVersion.runtime_kind`) and what to run there (`runtime_ref`); `get_runtime(kind)` picks
the adapter from the app config. Services call the port, never an adapter module.
"""
from __future__ import annotations

import logging
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


class RuntimeUnavailable(RuntimeFailure):
    """The runtime could not be asked (not configured, unreachable, refused us, or answered nonsense):
    nothing can be said about what it has."""


@dataclass(frozen=True)
class RuntimeReference:
    """Something a version can run: a built-in agent or a Langflow flow, with a name for people."""

    kind: str
    ref: str
    name: str


@dataclass(frozen=True)
class Component:
    """One component of a flow: its id (what tweaks and `output_component` name), its type
    ("ChatInput", "ChatOutput", ...) and the fields a tweak may set, with each field's type."""

    id: str
    type: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeDescription:
    """What a runtime says about one reference: its name, and for a flow its components."""

    kind: str
    ref: str
    name: str
    components: tuple[Component, ...] = ()
    chat_inputs: tuple[str, ...] = ()  # component ids
    chat_outputs: tuple[str, ...] = ()
    output_components: tuple[str, ...] = ()  # every component a run may read its output from


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


class RunControl:
    """Lets the caller ask a running adapter to stop (the run was cancelled, or its time is up).

    An adapter that can stop registers what to do with `on_stop` (Langflow: close the stream, and
    Langflow cancels the run when its client disconnects) and checks `stopped` between tokens. An
    adapter that cannot stop ignores it; its reply then arrives late and the caller records it."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def on_stop(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._stopped.is_set():
                self._callbacks.append(callback)
                return
        _call_quietly(callback)

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _call_quietly(callback)


def _call_quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # stopping is best effort: the run is given up either way
        logging.getLogger(__name__).warning("stopping a run failed", exc_info=True)


class Runtime(Protocol):
    kind: str
    unit_name: str  # what its usage units count, in words ("characters", "tokens")
    can_cut_output: bool  # whether `run` honours `max_units` by cutting the output

    def run(
        self, runtime_ref: str, input_text: str, session_id: str, context: RunContext,
        *, on_token: TokenCallback | None = None, max_units: int | None = None, control: RunControl | None = None,
    ) -> RunOutput:
        """Run `runtime_ref` on `input_text`; raise RuntimeFailure, RuntimeTimeout or RuntimeInputError.

        With `control`, the adapter stops where it can when the caller asks (see RunControl).

        With `max_units`, a runtime that can cut its output (`can_cut_output`) stops where the usage
        reaches `max_units` and says so with `RunOutput.truncated`; one that cannot reports its whole
        usage, which may exceed it."""
        ...

    def list_references(self) -> list[RuntimeReference]:
        """What this runtime can run, sorted by name; RuntimeUnavailable when it cannot be asked."""
        ...

    def describe(self, runtime_ref: str) -> RuntimeDescription | None:
        """`runtime_ref` as the runtime knows it, or None when it has no such thing; RuntimeUnavailable
        when it cannot be asked."""
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


def partial_usage(kind: str, input_text: str, delivered: str) -> int | None:
    """The usage units a run of runtime `kind` has used when it is stopped after delivering
    `delivered`, where the runtime counts usage itself (the built-in one counts characters);
    None where it cannot be known before the runtime reports it (Langflow reports at the end)."""
    if kind == "builtin":
        from app.adapters.runtime.builtin import BuiltinRuntime

        return BuiltinRuntime.input_units(input_text) + len(delivered)
    return None


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

        if config is None:
            from flask import current_app, has_app_context

            config = current_app.config if has_app_context() else {}
        return BuiltinRuntime(stream_delay=max(0, int(config.get("BUILTIN_STREAM_DELAY_MS") or 0)) / 1000)
    if kind == "langflow":
        from app.adapters.runtime.langflow import LangflowRuntime

        if config is None:
            from flask import current_app

            config = current_app.config
        return LangflowRuntime(
            base_url=config.get("LANGFLOW_URL", ""),
            api_key=config.get("LANGFLOW_API_KEY", ""),
            timeout=float(config.get("LANGFLOW_TIMEOUT", 30.0)),
            check_timeout=float(config.get("LANGFLOW_CHECK_TIMEOUT", 5.0)),
            http=_thread_http(),
        )
    raise RuntimeFailure("This agent's runtime is not available.", detail=f"unknown runtime kind {kind!r}")
