"""A small HTTP server that answers `POST /api/v1/run/{flow}` in the shapes Langflow 1.13 uses.

Flows (the path segment) choose the behaviour; every request is recorded for assertions. It also lists
flows (`GET /api/v1/flows/`) and serves one flow's graph (`GET /api/v1/flows/{uuid}`) from `FLOWS`.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fake_http import FakeServer

API_KEY = "sk-test-key"
FLOW_ID = "bbdb1e0a-4c1f-4d9e-9f57-0a2c7f1e2d11"


TWO_OUTPUTS_ID = "5c0e8a51-2f3b-4a6d-8e1c-9b7d2f4a6c10"
NO_OUTPUT_ID = "7a1d3c5e-9b2f-4e6a-8c0d-1f3e5a7b9c21"
COMPONENT_ID = "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c54"
STARTER_ID = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"


def flow_node(node_id: str, kind: str, fields: dict[str, str]) -> dict:
    """A node of a flow's graph as Langflow stores it: the component's fields are in data.node.template."""
    template = {name: {"type": ftype, "name": name, "value": "", "show": True} for name, ftype in fields.items()}
    template["_type"] = "Component"
    return {"id": node_id, "type": "genericNode", "position": {"x": 0, "y": 0},
            "data": {"id": node_id, "type": kind, "node": {"display_name": kind, "template": template, "outputs": []}}}


CHAT_INPUT_FIELDS = {"input_value": "str", "should_store_message": "bool", "sender_name": "str", "code": "code"}
CHAT_OUTPUT_FIELDS = {"input_value": "other", "should_store_message": "bool", "code": "code"}
FLOWS = {
    FLOW_ID: {"name": "Echo", "endpoint_name": "echo", "is_component": False, "nodes": [
        flow_node("ChatInput-csNAb", "ChatInput", CHAT_INPUT_FIELDS),
        flow_node("ChatOutput-yK0AU", "ChatOutput", CHAT_OUTPUT_FIELDS)]},
    TWO_OUTPUTS_ID: {"name": "Two answers", "endpoint_name": "two-outputs", "is_component": False, "nodes": [
        flow_node("ChatInput-a1", "ChatInput", CHAT_INPUT_FIELDS),
        flow_node("ChatOutput-main", "ChatOutput", CHAT_OUTPUT_FIELDS),
        flow_node("ChatOutput-other", "ChatOutput", CHAT_OUTPUT_FIELDS)]},
    NO_OUTPUT_ID: {"name": "Ingest documents", "endpoint_name": None, "is_component": False, "nodes": [
        flow_node("ChatInput-b2", "ChatInput", CHAT_INPUT_FIELDS),
        flow_node("File-c3", "File", {"path": "file"})]},
    COMPONENT_ID: {"name": "Saved component", "endpoint_name": None, "is_component": True, "nodes": []},
    STARTER_ID: {"name": "Basic Prompting", "endpoint_name": None, "is_component": False, "starter": True,
                 "nodes": []},
}


def run_response(text: str, session_id: str, usage: dict | None = None, component: str = "ChatOutput-yK0AU",
                 extra_outputs: list | None = None) -> dict:
    """The non-stream body of a Chat Input -> Chat Output flow, as Langflow returns it (trimmed)."""
    inner = {
        "results": {"message": {"text": text, "sender": "Machine", "sender_name": "AI", "session_id": session_id,
                                "flow_id": FLOW_ID, "properties": {"usage": usage, "source": {}}, "files": []}},
        "artifacts": {"message": text, "sender": "Machine", "type": "object"},
        "outputs": {"message": {"message": text, "type": "text"}},
        "logs": {"ChatOutput": []},
        "messages": [{"message": text, "sender": "Machine", "session_id": session_id, "component_id": component}],
        "timedelta": None, "duration": None,
        "component_display_name": "Chat Output", "component_id": component, "used_frozen_result": False,
        "token_usage": None,
    }
    return {"session_id": session_id,
            "outputs": [{"inputs": {"input_value": "x"}, "outputs": (extra_outputs or []) + [inner]}]}


@dataclass
class Recorded:
    path: str
    query: dict
    headers: dict
    body: dict | None
    client_port: int = 0


@dataclass
class FakeLangflow:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    flows_delay: float = 0.0
    disconnected: int = 0  # frozen runs whose client had left when they were released


class Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    state: FakeLangflow

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, pieces: list[bytes], pause: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
            if pause:
                time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(422, {"detail": [{"type": "json_invalid", "msg": "JSON decode error"}]})
            return
        self.state.requests.append(Recorded(parts.path, parse_qs(parts.query), dict(self.headers), body,
                                            self.client_address[1]))
        if not parts.path.startswith("/api/v1/run/"):
            self._send(404, {"detail": "Not Found"})
            return
        flow = parts.path.rsplit("/", 1)[1]
        if self.headers.get("x-api-key") != API_KEY:
            self._send(403, {"detail": "Invalid or missing API key"})
            return
        session_id = body.get("session_id") or flow
        text = body.get("input_value") or ""
        stream = parse_qs(parts.query).get("stream") == ["true"]
        if flow in ("echo", FLOW_ID):
            result = run_response(text, session_id)
        elif flow == "usage":
            usage = {"input_tokens": 1200, "output_tokens": 345, "total_tokens": 1545}
            result = run_response(f"answer to {text}", session_id, usage=usage)
            result["outputs"][0]["outputs"][0]["token_usage"] = usage
        elif flow == "two-outputs":
            other = run_response("from the other output", session_id, component="ChatOutput-other")
            result = run_response(f"main: {text}", session_id, component="ChatOutput-main",
                                  extra_outputs=other["outputs"][0]["outputs"])
        elif flow == "slow":
            self.state.release.wait(5)
            result = run_response(text, session_id)
        elif flow == "crash":
            self._send(500, {"detail": "Error running graph: boom"})
            return
        elif flow == "bad-input":
            self._send(400, {"detail": "Invalid input"})
            return
        elif flow == "tweaks-refused":
            self._send(422, {"detail": {"code": "TWEAKS_REFUSED", "fields": ["code"]}})
            return
        elif flow == "not-json":
            self._send(200, b"<html>proxy error</html>", "text/html")
            return
        elif flow == "empty":
            result = {"session_id": session_id, "outputs": []}
        else:
            self._send(404, {"detail": f"Flow identifier {flow} not found"})
            return
        if not stream:
            self._send(200, result)
            return

        def event(kind: str, data) -> bytes:
            return (json.dumps({"event": kind, "data": data}) + "\n\n").encode()

        user_msg = {"text": text, "sender": "User", "session_id": session_id}
        ai_msg = {"text": result["outputs"][0]["outputs"][-1]["results"]["message"]["text"] if result["outputs"] else "",
                  "sender": "Machine", "session_id": session_id}
        if flow == "crash-stream":
            pieces = [event("add_message", user_msg), event("error", {"error": "Error building Component OpenAI: boom"})]
        elif flow == "usage":
            pieces = [event("add_message", user_msg)] + [
                event("token", {"chunk": chunk, "id": "m1", "timestamp": "2026-01-01 00:00:00 UTC"})
                for chunk in ("answer ", "to ", text)
            ] + [event("add_message", ai_msg), event("end", {"result": result})]
        else:
            pieces = [event("add_message", user_msg), event("add_message", ai_msg), event("end", {"result": result})]
        # split one event across two chunks, as a network would
        joined = b"".join(pieces)
        self._stream([joined[:7], joined[7:40], joined[40:]])


class FlowsHandler(Handler):
    """`GET /api/v1/flows/` and `GET /api/v1/flows/{uuid}` as Langflow answers them; `state.flows_delay`
    makes every GET wait that long first (a Langflow that does not answer in time)."""

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.state.requests.append(Recorded(parts.path, query, dict(self.headers), None))
        if self.state.flows_delay:
            time.sleep(self.state.flows_delay)
        if self.headers.get("x-api-key") != API_KEY:
            self._send(403, {"detail": "Invalid or missing API key"})
            return
        if parts.path == "/api/v1/flows/":
            listed = [(flow_id, f) for flow_id, f in FLOWS.items()
                      if not (f.get("starter") and query.get("remove_example_flows") == ["true"])]
            headers_only = query.get("header_flows") == ["true"]
            self._send(200, [self._flow(flow_id, f, with_data=not headers_only) for flow_id, f in listed])
            return
        if parts.path.startswith("/api/v1/flows/"):
            flow_id = parts.path.rsplit("/", 1)[1]
            try:
                uuid.UUID(flow_id)
            except ValueError:
                self._send(422, {"detail": [{"type": "uuid_parsing", "loc": ["path", "flow_id"]}]})
                return
            if flow_id not in FLOWS:
                self._send(404, {"detail": "Flow not found"})
                return
            self._send(200, self._flow(flow_id, FLOWS[flow_id], with_data=True))
            return
        self._send(404, {"detail": "Not Found"})

    @staticmethod
    def _flow(flow_id: str, flow: dict, *, with_data: bool) -> dict:
        body = {"id": flow_id, "name": flow["name"], "description": "", "endpoint_name": flow["endpoint_name"],
                "is_component": flow["is_component"], "folder_id": None, "access_type": "PRIVATE", "tags": [],
                "data": None}
        if with_data:
            body["data"] = {"nodes": flow["nodes"], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}
        return body


class StreamingHandler(FlowsHandler):
    """Flows only reachable with ?stream=true that misbehave mid-stream."""

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        flow = parts.path.rsplit("/", 1)[1]
        if flow not in ("crash-stream", "cut-stream", "trickle", "frozen"):
            return super().do_POST()
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length))
        self.state.requests.append(Recorded(parts.path, parse_qs(parts.query), dict(self.headers), body,
                                            self.client_address[1]))

        def event(kind: str, data) -> bytes:
            return (json.dumps({"event": kind, "data": data}) + "\n\n").encode()

        user = event("add_message", {"text": body.get("input_value"), "sender": "User"})
        if flow == "crash-stream":
            self._stream([user, event("error", {"error": "Error building Component OpenAI: invalid key"})])
        elif flow == "cut-stream":
            self._stream([user, event("add_message", {"text": "partial", "sender": "Machine"})])
        elif flow == "frozen":  # answers at once, then says nothing until released (or the client leaves)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(f"{len(user):x}\r\n".encode() + user + b"\r\n")
            self.wfile.flush()
            self.state.release.wait(120)
            text = f"thawed: {body.get('input_value')}"
            result = run_response(text, body.get("session_id") or flow)
            rest = event("token", {"chunk": text, "id": "m", "timestamp": ""}) + event("end", {"result": result})
            try:
                self.wfile.write(f"{len(rest):x}\r\n".encode() + rest + b"\r\n0\r\n\r\n")
            except OSError:  # the client went away: Langflow cancels the run then
                self.state.disconnected += 1
        else:  # trickle: keeps sending tokens past any sensible deadline
            self._stream([user] + [event("token", {"chunk": "x", "id": "m", "timestamp": ""})] * 40, pause=0.1)


def start(*, keep_alive: bool = False) -> tuple[FakeServer, FakeLangflow]:
    """The fake on a free port; with `keep_alive`, HTTP/1.1 connections stay open between requests
    (as Langflow's uvicorn does) and each request records the client port it came from."""
    state = FakeLangflow(url="")
    attributes = {"state": state}
    if keep_alive:
        attributes["protocol_version"] = "HTTP/1.1"
    handler = type("BoundHandler", (StreamingHandler,), attributes)
    server = FakeServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, state
