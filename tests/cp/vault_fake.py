"""A small Vault speaking the KV version 2 endpoints hvac calls: write (POST data/<path>), read
(GET data/<path>) and destroy (DELETE metadata/<path>), checking X-Vault-Token. Serves on a free
loopback port in a thread; `delay` makes every answer slow."""
from __future__ import annotations

import json
import threading
import time

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class FakeVault:
    def __init__(self, *, token: str = "vault-test-token", mount: str = "secret") -> None:
        self.token = token
        self.mount = mount
        self.data: dict[str, list[dict]] = {}  # path -> versions
        self.calls: list[tuple[str, str]] = []
        self.delay = 0.0
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.calls.append((request.method, request.path))
        if self.delay:
            time.sleep(self.delay)
        response = self._answer(request)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.headers.get("X-Vault-Token") != self.token:
            return self._json({"errors": ["permission denied"]}, 403)
        prefix_data, prefix_meta = f"/v1/{self.mount}/data/", f"/v1/{self.mount}/metadata/"
        if request.path.startswith(prefix_data):
            path = request.path[len(prefix_data):]
            if request.method in ("POST", "PUT"):
                body = json.loads(request.get_data() or b"{}")
                versions = self.data.setdefault(path, [])
                versions.append(body["data"])
                return self._json({"data": {"version": len(versions), "created_time": "2026-01-01T00:00:00Z",
                                            "deletion_time": "", "destroyed": False}})
            if request.method == "GET":
                if path not in self.data:
                    return self._json({"errors": []}, 404)
                versions = self.data[path]
                return self._json({"data": {"data": versions[-1], "metadata": {
                    "version": len(versions), "created_time": "2026-01-01T00:00:00Z", "deletion_time": "",
                    "destroyed": False}}})
        if request.path.startswith(prefix_meta) and request.method == "DELETE":
            self.data.pop(request.path[len(prefix_meta):], None)
            return Response(status=204)
        return self._json({"errors": ["no handler for route"]}, 404)

    @staticmethod
    def _json(body: dict, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
