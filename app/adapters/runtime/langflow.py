"""Langflow adapter: `POST {LANGFLOW_URL}/api/v1/run/{flow}` as checked against Langflow 1.13.

- Auth is the `x-api-key` header (a service key; it never reaches the browser).
- We always send our own `session_id`: without one Langflow uses the flow id, and every caller
  would share one chat memory.
- The output text is at `outputs[0].outputs[i].results.message.text`; token usage is
  `token_usage` on the result or `properties.usage` on the message (`{input_tokens,
  output_tokens, total_tokens}`), often null for flows without a model.
- `?stream=true` answers `text/event-stream` that is NOT standard SSE: bare JSON objects
  `{"event": ..., "data": ...}` separated by a blank line. Errors arrive inside a 200 stream as
  an `error` event; the full result comes in the `end` event's `data.result`.
- Flows are listed with `GET /api/v1/flows/?remove_example_flows=true&header_flows=true` (a plain
  list of `{id, name, endpoint_name, is_component, ...}` without the graph) and read one by one with
  `GET /api/v1/flows/{uuid}`, whose `data.nodes[].data` holds each component's `type` and its
  `node.template` (the fields a tweak may set). Both answer within `check_timeout`.
"""
from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import ReadTimeoutError

from app.adapters.runtime import (
    Component, RunContext, RunControl, RunOutput, RuntimeDescription, RuntimeFailure, RuntimeInputError,
    RuntimeReference, RuntimeTimeout, RuntimeUnavailable, TokenCallback,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
DRAIN_SECONDS = 1.0  # reading the end of a finished stream; the connection is closed after that
MAX_ERROR_BODY = 500
CHAT_INPUT_TYPES = frozenset({"ChatInput"})
CHAT_OUTPUT_TYPES = frozenset({"ChatOutput"})
OUTPUT_TYPES = frozenset({"ChatOutput", "TextOutput"})


class LangflowRuntime:
    kind = "langflow"
    unit_name = "tokens"
    # the flow's model has produced (and billed) its tokens before Langflow reports them, so an
    # output cannot be stopped at a usage limit: the whole usage is reported and the caller decides
    can_cut_output = False

    @staticmethod
    def input_units(input_text: str) -> int:
        """0: the tokens an input counts for depend on the flow's model and prompts, known only after the run."""
        return 0

    def __init__(self, *, base_url: str, api_key: str, timeout: float = 30.0, check_timeout: float = 5.0,
                 http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.check_timeout = check_timeout
        self.http = http or requests.Session()

    # -- what the configured Langflow has ------------------------------------------------------

    def list_flows(self) -> list[RuntimeReference]:
        """The flows of the key's owner, starter templates and saved components left out, by name."""
        headers = self._get("/api/v1/flows/", {"remove_example_flows": "true", "header_flows": "true",
                                                "get_all": "true"})
        if not isinstance(headers, list):
            raise RuntimeUnavailable("Langflow sent a flow list we could not read.",
                                     detail=f"GET flows: not a list: {json.dumps(headers)[:MAX_ERROR_BODY]}")
        found = [
            RuntimeReference(self.kind, str(h["id"]), str(h.get("name") or h["id"]))
            for h in headers if isinstance(h, dict) and h.get("id") and not h.get("is_component")
        ]
        return sorted(found, key=lambda r: (r.name.lower(), r.ref))

    def list_references(self) -> list[RuntimeReference]:
        return self.list_flows()

    def describe(self, runtime_ref: str) -> RuntimeDescription | None:
        """The flow named by its id or its endpoint name (as the run API accepts both), or None."""
        flow_id = runtime_ref if _is_uuid(runtime_ref) else self._flow_id_by_endpoint_name(runtime_ref)
        if flow_id is None:
            return None
        flow = self._get(f"/api/v1/flows/{quote(flow_id, safe='')}", {}, missing_ok=True)
        if flow is None:
            return None
        if not isinstance(flow, dict):
            raise RuntimeUnavailable("Langflow sent a flow we could not read.",
                                     detail=f"GET flow {flow_id}: not an object")
        nodes = ((flow.get("data") or {}).get("nodes") or []) if isinstance(flow.get("data"), dict) else []
        components = tuple(c for c in (_component(node) for node in nodes) if c is not None)
        return RuntimeDescription(
            kind=self.kind, ref=runtime_ref, name=str(flow.get("name") or runtime_ref), components=components,
            chat_inputs=tuple(c.id for c in components if c.type in CHAT_INPUT_TYPES),
            chat_outputs=tuple(c.id for c in components if c.type in CHAT_OUTPUT_TYPES),
            output_components=tuple(c.id for c in components if c.type in OUTPUT_TYPES),
        )

    def _flow_id_by_endpoint_name(self, name: str) -> str | None:
        headers = self._get("/api/v1/flows/", {"header_flows": "true", "get_all": "true"})
        for header in headers if isinstance(headers, list) else []:
            if isinstance(header, dict) and header.get("endpoint_name") == name and header.get("id"):
                return str(header["id"])
        return None

    def _get(self, path: str, params: dict, *, missing_ok: bool = False) -> Any:
        """GET a JSON document within `check_timeout`; None for a 404 (or a malformed id) when `missing_ok`."""
        if not self.base_url or not self.api_key:
            raise RuntimeUnavailable("Langflow is not configured.", detail="LANGFLOW_URL or LANGFLOW_API_KEY is not set")
        url = f"{self.base_url}{path}"
        try:
            response = self.http.get(url, params=params, headers={"x-api-key": self.api_key, "accept": "application/json"},
                                     timeout=(min(CONNECT_TIMEOUT, self.check_timeout), self.check_timeout))
        except requests.RequestException as exc:
            raise RuntimeUnavailable("Langflow could not be reached.",
                                     detail=f"GET {url}: {type(exc).__name__}: {exc}") from exc
        with response:
            if missing_ok and response.status_code in (404, 422):  # 422: not a flow id Langflow could parse
                return None
            if response.status_code in (401, 403):
                raise RuntimeUnavailable("Langflow refused our credentials.",
                                         detail=f"GET {url} -> HTTP {response.status_code}: {response.text[:MAX_ERROR_BODY]}")
            if response.status_code != 200:
                raise RuntimeUnavailable("Langflow could not answer.",
                                         detail=f"GET {url} -> HTTP {response.status_code}: {response.text[:MAX_ERROR_BODY]}")
            try:
                return response.json()
            except ValueError as exc:
                raise RuntimeUnavailable("Langflow sent an answer we could not read.",
                                         detail=f"GET {url}: body is not JSON: {response.text[:MAX_ERROR_BODY]!r}") from exc

    # -- the port ------------------------------------------------------------------------------

    def run(
        self, runtime_ref: str, input_text: str, session_id: str, context: RunContext,
        *, on_token: TokenCallback | None = None, max_units: int | None = None, control: RunControl | None = None,
    ) -> RunOutput:
        """Run the flow; stream (and pass each token to `on_token`) when a callback is given.

        `max_units` is not honoured (`can_cut_output` is False): the usage reported may exceed it.
        With `control`, a stop closes the stream: Langflow cancels a run whose client disconnects."""
        if not self.base_url or not self.api_key:
            raise RuntimeFailure("This agent's runtime is not configured. It has been logged.",
                                 detail="LANGFLOW_URL or LANGFLOW_API_KEY is not set")
        if not session_id:
            raise ValueError("session_id is required: Langflow would otherwise share one memory between callers")
        stream = on_token is not None
        url = f"{self.base_url}/api/v1/run/{quote(runtime_ref, safe='')}"
        body: dict[str, Any] = {
            "input_value": input_text,
            "input_type": "chat",
            "output_type": "chat",
            "tweaks": context.tweaks or {},
            "session_id": session_id,
        }
        if context.output_component:
            body["output_component"] = context.output_component
        headers = {"x-api-key": self.api_key, "accept": "application/json"}
        started = time.monotonic()
        try:
            response = self.http.post(
                url, params={"stream": "true" if stream else "false"}, json=body, headers=headers,
                timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout), stream=stream,
            )
        except requests.Timeout as exc:
            raise self._timeout(exc) from exc
        except requests.RequestException as exc:
            raise RuntimeFailure("The agent runtime cannot be reached right now. Try again in a moment.",
                                 detail=f"POST {url}: {type(exc).__name__}: {exc}") from exc
        with response:
            if response.status_code != 200:
                raise self._http_error(response, url)
            if stream:
                if control is not None:
                    control.on_stop(lambda: _disconnect(response))
                try:
                    result = self._read_stream(response, on_token, deadline=started + self.timeout, url=url)
                except RuntimeFailure:
                    if control is not None and control.stopped:
                        raise RuntimeFailure("The run was stopped.", detail=f"stream from {url} closed by us") from None
                    raise
            else:
                try:
                    result = response.json()
                except ValueError as exc:
                    raise RuntimeFailure("The agent runtime sent an answer we could not read.",
                                         detail=f"POST {url}: body is not JSON: {response.text[:MAX_ERROR_BODY]!r}") from exc
        text, usage, component = _extract_output(result, context.output_component)
        if result.get("session_id") not in (None, session_id):
            log.warning("Langflow answered with session %r for our session %r", result.get("session_id"), session_id)
        return RunOutput(
            text=text,
            usage_units=_total_tokens(usage),
            details={"runtime": self.kind, "flow": runtime_ref, "session_id": session_id,
                     "component_id": component, "token_usage": usage, "streamed": stream},
        )

    # -- helpers -------------------------------------------------------------------------------

    def _timeout(self, exc: Exception) -> RuntimeTimeout:
        seconds = f"{self.timeout:g}"
        return RuntimeTimeout(f"The agent did not answer within {seconds} seconds. You were not charged.",
                              detail=f"timeout after {seconds}s: {exc}")

    def _http_error(self, response: requests.Response, url: str) -> RuntimeFailure:
        status = response.status_code
        body = response.text[:MAX_ERROR_BODY]
        detail = f"POST {url} -> HTTP {status}: {body}"
        if status in (401, 403):
            return RuntimeFailure("The agent runtime refused our credentials. It has been logged.", detail=detail)
        if status == 404:
            return RuntimeFailure("This agent's flow was not found on the runtime. It has been logged.", detail=detail)
        if status == 400:
            return RuntimeInputError("The agent could not accept this input. Check it and try again.", detail=detail)
        if status == 422:
            return RuntimeFailure("The agent runtime refused the request. It has been logged.", detail=detail)
        if status == 429:
            return RuntimeFailure("The agent runtime is busy. Try again in a minute.", detail=detail)
        return RuntimeFailure("The agent failed while running. Try again, or contact support if it keeps happening.",
                              detail=detail)

    def _read_stream(self, response: requests.Response, on_token: TokenCallback | None, *,
                     deadline: float, url: str) -> dict:
        """Read `{"event","data"}` objects separated by blank lines until `end` (or `error`)."""
        buffer = b""
        try:
            for chunk in response.iter_content(chunk_size=None):
                buffer += chunk
                *events, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
                for raw in events:
                    result = self._handle_event(raw, on_token, url)
                    if result is not None:
                        _drain(response)
                        return result
                if time.monotonic() > deadline:
                    raise self._timeout(TimeoutError("stream deadline passed"))
        except requests.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], ReadTimeoutError):
                raise self._timeout(exc) from exc
            raise RuntimeFailure("The connection to the agent runtime broke off. Try again.",
                                 detail=f"stream from {url}: {exc}") from exc
        except requests.RequestException as exc:
            raise RuntimeFailure("The connection to the agent runtime broke off. Try again.",
                                 detail=f"stream from {url}: {type(exc).__name__}: {exc}") from exc
        if buffer.strip():
            result = self._handle_event(buffer, on_token, url)
            if result is not None:
                return result
        raise RuntimeFailure("The agent stopped before it finished. Try again.",
                             detail=f"stream from {url} ended without an end event")

    @staticmethod
    def _handle_event(raw: bytes, on_token: TokenCallback | None, url: str) -> dict | None:
        raw = raw.strip()
        if not raw:
            return None
        try:
            event = json.loads(raw)
        except ValueError as exc:
            raise RuntimeFailure("The agent runtime sent an answer we could not read.",
                                 detail=f"stream from {url}: not JSON: {raw[:MAX_ERROR_BODY]!r}") from exc
        kind, data = event.get("event"), event.get("data") or {}
        if kind == "token" and on_token is not None and isinstance(data, dict) and data.get("chunk"):
            on_token(str(data["chunk"]))
        elif kind == "error":
            message = data.get("error") or data.get("text") or data if isinstance(data, dict) else data
            raise RuntimeFailure("The agent reported an error while running. It has been logged.",
                                 detail=f"stream from {url}: error event: {str(message)[:MAX_ERROR_BODY]}")
        elif kind == "end":
            result = data.get("result") if isinstance(data, dict) else None
            if not isinstance(result, dict):
                raise RuntimeFailure("The agent runtime sent an answer we could not read.",
                                     detail=f"stream from {url}: end event without a result: {raw[:MAX_ERROR_BODY]!r}")
            return result
        return None


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        fp = getattr(response.raw, "_fp", None)
        sock = getattr(getattr(getattr(fp, "fp", None), "raw", None), "_sock", None)
    return sock


def _drain(response: requests.Response) -> None:
    """Read what follows the end event (the stream's last chunk) so the connection goes back to the
    pool for the next run instead of being closed; give up after DRAIN_SECONDS (it is closed then)."""
    sock = _socket_of(response)
    try:
        if sock is not None:
            sock.settimeout(DRAIN_SECONDS)
        for _ in response.iter_content(chunk_size=None):
            pass
    except (requests.RequestException, OSError, ReadTimeoutError):
        pass


def _disconnect(response: requests.Response) -> None:
    """Close the stream's connection from another thread: a shutdown of the socket wakes the reader
    blocked on it, which then closes the response itself (closing it here could wait on the reader)."""
    sock = _socket_of(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _extract_output(result: Any, output_component: str | None) -> tuple[str, dict | None, str | None]:
    """(text, token usage or None, component id) from a non-stream run response."""
    try:
        outputs = result["outputs"][0]["outputs"]
    except (KeyError, IndexError, TypeError) as exc:
        raise RuntimeFailure("The agent finished without an output.",
                             detail=f"no outputs[0].outputs in {json.dumps(result)[:MAX_ERROR_BODY]}") from exc
    candidates = [o for o in outputs if isinstance(o, dict)]
    if output_component:
        candidates = [o for o in candidates if o.get("component_id") == output_component]
        if not candidates:
            raise RuntimeFailure("The agent finished without an output.",
                                 detail=f"no output from component {output_component!r}")
    for output in candidates:
        message = ((output.get("results") or {}).get("message") or {})
        text = message.get("text") if isinstance(message, dict) else None
        if text is None:  # non-chat outputs keep the text in outputs.message.message
            text = ((output.get("outputs") or {}).get("message") or {}).get("message")
        if isinstance(text, str):
            usage = output.get("token_usage") or ((message.get("properties") or {}).get("usage")
                                                  if isinstance(message, dict) else None)
            return text, usage if isinstance(usage, dict) else None, output.get("component_id")
    raise RuntimeFailure("The agent finished without an output.",
                         detail=f"no message text in {json.dumps(result)[:MAX_ERROR_BODY]}")


def _total_tokens(usage: dict | None) -> int:
    if not usage:
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int) and total >= 0:
        return total
    parts = [usage.get("input_tokens"), usage.get("output_tokens")]
    return sum(p for p in parts if isinstance(p, int) and p > 0)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _component(node: Any) -> Component | None:
    """A flow node as a Component: `{id, data: {id, type, node: {template: {field: {type, ...}}}}}`."""
    if not isinstance(node, dict) or not isinstance(node.get("data"), dict):
        return None
    data = node["data"]
    node_id = node.get("id") or data.get("id")
    if not isinstance(node_id, str) or not node_id:
        return None
    template = (data.get("node") or {}).get("template") if isinstance(data.get("node"), dict) else None
    fields = {
        name: str(spec.get("type") or "")
        for name, spec in (template or {}).items() if isinstance(spec, dict) and not name.startswith("_")
    }
    return Component(id=node_id, type=str(data.get("type") or ""), fields=fields)
