"""A fake Saleor for tests: a real HTTP server on 127.0.0.1 (port 0) that executes GraphQL
requests with graphql-core against `tests/saleor_fake_schema.graphql`, our own SDL of the part of
Saleor's API that our documents use (it needs no Saleor file, so it runs in any clone).

Saleor's full schema is Saleor's file, not ours: `saleor_schema()` reads it from
SALEOR_SCHEMA_PATH (default `../shared/saleor/schema.graphql`, relative to the project root) for the
tests that check our documents and our SDL against it, and skips those tests when it is absent.

Resolvers are a dict keyed by root field name, e.g. ``{"products": fn, "checkoutCreate": fn}``.
graphql-core's default resolver calls a callable found in the root value as ``fn(info, **args)``
(arguments keep their GraphQL names: ``sortBy``, ``after``) and resolves nested dicts by key;
a dict with a ``"__typename"`` key picks the concrete type of a union or an interface.

Like the real Saleor, the fake refuses (HTTP 400) a document that does not validate against its
schema or that holds more than one operation, so an adapter that passes here sends what Saleor
accepts. Every request is logged (`operations`) for assertions, and failure modes can be switched
on: a delay longer than the client's timeout, an HTTP status (500), or GraphQL errors.

    fake = SaleorFake({"products": lambda info, **args: {...}})
    with fake:                      # or use the `saleor_fake` fixture from tests/conftest.py
        app = make_app(COMMERCE_BACKEND="saleor", SALEOR_API_URL=fake.url)
        fake.fail_with_delay(2.0)   # the next requests hang for two seconds
        fake.recover()
"""
from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute,
    parse,
    validate,
)

from tests.fake_http import FakeServer

GRAPHQL_PATH = "/graphql/"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMA_PATH = "../shared/saleor/schema.graphql"
FAKE_SCHEMA_PATH = Path(__file__).resolve().parent / "saleor_fake_schema.graphql"


def schema_path() -> Path:
    """Saleor's SDL: SALEOR_SCHEMA_PATH (a relative path is taken from the project root), else
    `../shared/saleor/schema.graphql` beside the project."""
    configured = Path(os.environ.get("SALEOR_SCHEMA_PATH") or DEFAULT_SCHEMA_PATH)
    return configured if configured.is_absolute() else (PROJECT_ROOT / configured).resolve()


def saleor_schema() -> GraphQLSchema:
    """Saleor's full schema; the calling test is skipped when the file is not there."""
    path = schema_path()
    if not path.is_file():
        pytest.skip(
            f"Saleor's schema is not at {path}: set SALEOR_SCHEMA_PATH to Saleor 3.23's schema.graphql "
            "to check our GraphQL documents against it"
        )
    return _build_schema(path)


@functools.cache
def _build_schema(path: Path) -> GraphQLSchema:
    """Built once per process (Saleor's SDL is about 1 MB and takes seconds to build)."""
    return build_schema(path.read_text(encoding="utf-8"))


def fake_schema() -> GraphQLSchema:
    """Our SDL of the operations the fake answers (`tests/saleor_fake_schema.graphql`)."""
    return _build_schema(FAKE_SCHEMA_PATH)


@dataclass(frozen=True)
class ReceivedOperation:
    """One request the fake received."""

    name: str | None
    variables: dict[str, Any]
    headers: dict[str, str]
    query: str


@dataclass
class _Failure:
    kind: str  # "delay" | "status" | "graphql_errors"
    operation: str | None = None  # only requests for this operation name; None = every request
    seconds: float = 0.0
    status: int = 500
    messages: tuple[str, ...] = ()
    code: str = "GRAPHQL_ERROR"

    def applies_to(self, operation_name: str | None) -> bool:
        return self.operation is None or self.operation == operation_name


@dataclass
class SaleorFake:
    """The server; `url` is the GraphQL endpoint (like `SALEOR_API_URL`) once started."""

    resolvers: dict[str, Any] = field(default_factory=dict)
    operations: list[ReceivedOperation] = field(default_factory=list)
    url: str = ""
    _failure: _Failure | None = None
    _server: FakeServer | None = None
    _thread: threading.Thread | None = None
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "SaleorFake":
        schema = fake_schema()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?", 1)[0] != GRAPHQL_PATH:
                    self._send(404, {"errors": [{"message": "Not found"}]})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"errors": [{"message": "Unable to parse query."}]})
                    return
                status, payload = fake._handle(schema, body, dict(self.headers.items()))
                if status is None:  # the connection was released while delaying: answer nothing useful
                    return
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=str).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): that is the point of the delay mode

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

        server = FakeServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._release.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="saleor-fake", daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_port}{GRAPHQL_PATH}"
        return self

    def stop(self) -> None:
        self._release.set()  # wake any request that is sleeping in a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "SaleorFake":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- failure modes ---------------------------------------------------------------------
    def fail_with_delay(self, seconds: float, *, operation: str | None = None) -> None:
        """Answer only after `seconds` (set it above the client's timeout to simulate a hang)."""
        self._failure = _Failure("delay", operation=operation, seconds=seconds)

    def fail_with_status(self, status: int = 500, *, operation: str | None = None) -> None:
        """Answer with this HTTP status and Saleor's generic error body."""
        self._failure = _Failure("status", operation=operation, status=status)

    def fail_with_graphql_errors(
        self, *messages: str, code: str = "GRAPHQL_ERROR", operation: str | None = None
    ) -> None:
        """Answer HTTP 200 with `data: null` and these errors, as Saleor does for a failed operation."""
        self._failure = _Failure(
            "graphql_errors", operation=operation, messages=messages or ("Internal error",), code=code
        )

    def recover(self) -> None:
        """Back to normal answers (and release any request still waiting in a delay)."""
        self._failure = None
        self._release.set()
        self._release = threading.Event()

    # --- assertions helpers ----------------------------------------------------------------
    def operation_names(self) -> list[str | None]:
        with self._lock:
            return [op.name for op in self.operations]

    def received(self, name: str) -> list[ReceivedOperation]:
        """The requests for one operation name, oldest first."""
        with self._lock:
            return [op for op in self.operations if op.name == name]

    def clear_log(self) -> None:
        with self._lock:
            self.operations.clear()

    # --- request handling ------------------------------------------------------------------
    def _handle(
        self, schema: GraphQLSchema, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int | None, dict[str, Any]]:
        query = body.get("query")
        variables = body.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return 400, {"errors": [{"message": "Must provide a query string."}]}
        try:
            document = parse(query)
        except GraphQLError as error:
            return 400, {"errors": [error.formatted]}
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        name = body.get("operationName") or (
            operations[0].name.value if len(operations) == 1 and operations[0].name else None
        )
        with self._lock:
            self.operations.append(ReceivedOperation(name, dict(variables), headers, query))

        failure = self._failure
        if failure is not None and failure.applies_to(name):
            if failure.kind == "delay":
                if self._release.wait(failure.seconds):
                    return None, {}
            elif failure.kind == "status":
                return failure.status, {"errors": [{"message": "Internal Server Error"}]}
            elif failure.kind == "graphql_errors":
                return 200, {
                    "data": None,
                    "errors": [
                        {"message": m, "extensions": {"exception": {"code": failure.code}}}
                        for m in failure.messages
                    ],
                }

        # Saleor validates every operation in the posted document: one operation per request.
        if len(operations) != 1:
            return 400, {"errors": [{"message": "Send exactly one operation per request."}]}
        errors = validate(schema, document)
        if errors:
            return 400, {"errors": [e.formatted for e in errors]}
        result = execute(
            schema, document, root_value=self.resolvers, variable_values=variables, operation_name=name
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        return 200, payload

