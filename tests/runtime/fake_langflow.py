"""A small HTTP server that answers `POST /api/v1/run/{flow}` in the shapes Langflow 1.13 uses.

Flows (the path segment) choose the behaviour; every request is recorded for assertions.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_KEY = "sk-test-key"
FLOW_ID = "bbdb1e0a-4c1f-4d9e-9f57-0a2c7f1e2d11"


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


@dataclass
class FakeLangflow:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
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
        self.state.requests.append(Recorded(parts.path, parse_qs(parts.query), dict(self.headers), body))
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


class StreamingHandler(Handler):
    """Flows only reachable with ?stream=true that misbehave mid-stream."""

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        flow = parts.path.rsplit("/", 1)[1]
        if flow not in ("crash-stream", "cut-stream", "trickle", "frozen"):
            return super().do_POST()
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length))
        self.state.requests.append(Recorded(parts.path, parse_qs(parts.query), dict(self.headers), body))

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


def start() -> tuple[ThreadingHTTPServer, FakeLangflow]:
    state = FakeLangflow(url="")
    handler = type("BoundHandler", (StreamingHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, state
