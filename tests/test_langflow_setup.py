"""deploy/scripts/langflow_setup.py against a Langflow stand-in that answers as Langflow 1.13 does: it signs
in, makes the marketplace's API key and an echo flow (Chat Input wired to Chat Output) once, runs the flow
with the key, prints the settings, and on a second run reuses what it finds by name."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "scripts" / "langflow_setup.py"
PASSWORD = "admin-pass-1"
USER_ID = "d86a47eb-4ab0-4a32-9ca6-fda4cd9ce07a"


def node(node_id: str, kind: str) -> dict:
    # the starter-projects dump gives each node only its id and data ({id, type, node: the component})
    return {"id": node_id, "data": {"id": node_id, "type": kind, "node": {"display_name": kind, "template": {}}}}


BASIC_PROMPTING = {
    "name": "Basic Prompting", "name_key": "basic_prompting", "description": "Perform basic prompting.",
    "is_component": False, "endpoint_name": None,
    "data": {"viewport": None, "nodes": [node("ChatInput-csNAb", "ChatInput"), node("ChatOutput-4rnyK", "ChatOutput"),
                                         node("LanguageModelComponent-G4hT-", "LanguageModelComponent"),
                                         node("PromptComponent-ZuPFD", "Prompt Template")],
             "edges": [
                 {"source": "ChatInput-csNAb", "target": "PromptComponent-ZuPFD", "data": {
                     "sourceHandle": {"dataType": "ChatInput", "id": "ChatInput-csNAb", "name": "message",
                                      "output_types": ["Message"]},
                     "targetHandle": {"fieldName": "user_input", "id": "PromptComponent-ZuPFD",
                                      "inputTypes": ["Message"], "type": "str"}}},
                 {"source": "LanguageModelComponent-G4hT-", "target": "ChatOutput-4rnyK", "data": {
                     "sourceHandle": {"dataType": "LanguageModelComponent", "id": "LanguageModelComponent-G4hT-",
                                      "name": "text_output", "output_types": ["Message"]},
                     "targetHandle": {"fieldName": "input_value", "id": "ChatOutput-4rnyK",
                                      "inputTypes": ["Data", "JSON", "DataFrame", "Table", "Message"],
                                      "type": "other"}}}]},
}


class StandIn:
    """Langflow's answers as seen from 1.13.0: login by form, keys listed with all but 8 characters masked,
    the clear key only when made, 403 without credentials, a duplicate flow name renamed "(1)"."""

    def __init__(self):
        self.calls: list[dict] = []
        self.keys: list[dict] = [{"id": str(uuid.uuid4()), "name": "MCP Project Starter Project - default",
                                  "api_key": "sk-_BALnOtTheMarketplacesKey00000000000000000000"}]
        self.flows: list[dict] = []
        self.sign_ins_left = 5  # Langflow 1.13 allowed five sign-ins a minute from one address
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        call = {"method": request.method, "path": request.path, "query": dict(request.args),
                "authorization": request.headers.get("Authorization"), "x-api-key": request.headers.get("x-api-key"),
                "form": dict(request.form), "json": request.get_json(silent=True)}
        self.calls.append(call)
        status, body = self.answer(call)
        return Response(json.dumps(body), status=status, content_type="application/json")(environ, start_response)

    def answer(self, call: dict) -> tuple[int, object]:
        method, path = call["method"], call["path"]
        if (method, path) == ("POST", "/api/v1/login"):
            self.sign_ins_left -= 1
            if self.sign_ins_left < 0:
                return 429, {"detail": "Too many requests. Please try again later.", "retry_after": "60"}
            if call["form"] != {"username": "admin", "password": PASSWORD}:
                return 401, {"detail": "Incorrect username or password"}
            return 200, {"access_token": "jwt-admin", "refresh_token": "jwt-refresh", "token_type": "bearer"}
        if path.startswith("/api/v1/run/"):
            return self.run(call)
        if call["authorization"] != "Bearer jwt-admin":
            return 403, {"detail": "No authentication credentials provided"}
        if (method, path) == ("GET", "/api/v1/api_key/"):
            return 200, {"total_count": len(self.keys), "user_id": USER_ID, "api_keys": [
                {**k, "api_key": k["api_key"][:8] + "*" * (len(k["api_key"]) - 8), "user_id": USER_ID,
                 "is_active": True, "total_uses": 0} for k in self.keys]}
        if (method, path) == ("POST", "/api/v1/api_key/"):
            key = {"id": str(uuid.uuid4()), "name": call["json"]["name"], "api_key": f"sk-{uuid.uuid4().hex}"}
            self.keys.append(key)
            return 200, {**key, "user_id": USER_ID, "is_active": True, "total_uses": 0}
        if method == "DELETE" and path.startswith("/api/v1/api_key/"):
            self.keys = [k for k in self.keys if k["id"] != path.rsplit("/", 1)[1]]
            return 200, {"detail": "API Key deleted"}
        if (method, path) == ("GET", "/api/v1/starter-projects/"):
            return 200, [BASIC_PROMPTING, {**BASIC_PROMPTING, "name": "Blog Writer", "name_key": "blog_writer"}]
        if (method, path) == ("GET", "/api/v1/flows/"):
            return 200, [{k: v for k, v in f.items() if k != "data"} | {"data": None} for f in self.flows]
        if (method, path) == ("POST", "/api/v1/flows/"):
            flow = dict(call["json"], id=str(uuid.uuid4()), user_id=USER_ID)
            if any(f["name"] == flow["name"] for f in self.flows):
                flow["name"] += " (1)"
                flow["endpoint_name"] += "-1"
            self.flows.append(flow)
            return 201, flow
        return 404, {"detail": "Not Found"}

    def run(self, call: dict) -> tuple[int, object]:
        if not any(k["api_key"] == call["x-api-key"] for k in self.keys):
            return 403, {"detail": "Invalid or missing API key"}
        ref = call["path"].rsplit("/", 1)[1]
        flow = next((f for f in self.flows if ref in (f["id"], f["endpoint_name"])), None)
        if flow is None:
            return 404, {"detail": f"Flow identifier {ref} not found"}
        kinds = {n["id"]: n["data"]["type"] for n in flow["data"]["nodes"]}
        (edge,) = flow["data"]["edges"]
        if (kinds[edge["source"]], kinds[edge["target"]]) != ("ChatInput", "ChatOutput"):
            return 500, {"detail": "the flow does not lead its input to its output"}
        body = call["json"]
        message = {"text": body["input_value"], "sender": "Machine", "session_id": body["session_id"],
                   "flow_id": flow["id"], "properties": {"usage": None}}
        return 200, {"session_id": body["session_id"], "outputs": [{"inputs": {"input_value": body["input_value"]},
                     "outputs": [{"results": {"message": message}, "component_id": edge["target"],
                                  "token_usage": None}]}]}


def run_script(langflow: StandIn, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("LANGFLOW_ADMIN_PASSWORD", "LANGFLOW_API_KEY")}
    return subprocess.run([sys.executable, str(SCRIPT), "--url", langflow.url, *args], env={**environ, **env},
                          capture_output=True, text=True, timeout=60)


def made(langflow: StandIn) -> list[tuple[str, str]]:
    return [(c["method"], c["path"]) for c in langflow.calls if c["method"] in ("POST", "DELETE")
            and c["path"] not in ("/api/v1/login",) and not c["path"].startswith("/api/v1/run/")]


def test_first_run_makes_the_key_and_the_echo_flow_runs_it_and_prints_the_settings():
    langflow = StandIn()
    try:
        result = run_script(langflow, "--marketplace-url", "http://langflow:7860", LANGFLOW_ADMIN_PASSWORD=PASSWORD)
    finally:
        langflow.server.shutdown()
    assert result.returncode == 0, result.stderr
    key = langflow.keys[-1]
    (flow,) = langflow.flows
    assert key["name"] == "digitlify-marketplace"
    assert result.stdout.splitlines() == [
        "LANGFLOW_URL=http://langflow:7860",
        f"LANGFLOW_API_KEY={key['api_key']}",
        f"# flow 'Marketplace echo' (endpoint marketplace-echo): {flow['id']}",
    ]
    assert [(c["method"], c["path"]) for c in langflow.calls] == [
        ("POST", "/api/v1/login"), ("GET", "/api/v1/api_key/"), ("POST", "/api/v1/api_key/"),
        ("GET", "/api/v1/flows/"), ("GET", "/api/v1/starter-projects/"), ("POST", "/api/v1/flows/"),
        ("POST", f"/api/v1/run/{flow['id']}"),
    ]
    login, *signed_in, run = langflow.calls
    assert login["form"] == {"username": "admin", "password": PASSWORD} and login["authorization"] is None
    assert all(c["authorization"] == "Bearer jwt-admin" for c in signed_in)
    assert signed_in[2]["query"] == {"remove_example_flows": "true", "header_flows": "true", "get_all": "true"}
    # the flow is Chat Input wired to Chat Output, both taken from the starter project
    assert (flow["name"], flow["endpoint_name"]) == ("Marketplace echo", "marketplace-echo")
    chat_input, chat_output = flow["data"]["nodes"]
    assert (chat_input["data"]["type"], chat_output["data"]["type"]) == ("ChatInput", "ChatOutput")
    (edge,) = flow["data"]["edges"]
    assert (edge["source"], edge["target"]) == (chat_input["id"], chat_output["id"])
    assert edge["data"]["targetHandle"]["fieldName"] == "input_value"
    assert edge["sourceHandle"] == json.dumps(edge["data"]["sourceHandle"]).replace('"', "œ")
    # run as the marketplace runs it: the key alone, its own session, and the echo checked
    assert run["x-api-key"] == key["api_key"] and run["authorization"] is None
    assert run["query"] == {"stream": "false"}
    assert run["json"]["input_value"] == "ping from the marketplace" and run["json"]["session_id"]
    assert "flow 'Marketplace echo': made, answered in" in result.stderr


def test_a_second_run_reuses_the_key_and_the_flow_by_name():
    langflow = StandIn()
    try:
        first = run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD)
        key, (flow,) = langflow.keys[-1], langflow.flows
        langflow.calls.clear()
        without_key = run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD)
        made_without_key = made(langflow)
        langflow.calls.clear()
        with_key = run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD, LANGFLOW_API_KEY=key["api_key"])
        runs = [c for c in langflow.calls if c["path"].startswith("/api/v1/run/")]
        made_with_key = made(langflow)
    finally:
        langflow.server.shutdown()
    assert first.returncode == without_key.returncode == with_key.returncode == 0, without_key.stderr + with_key.stderr
    assert made_without_key == made_with_key == []
    assert [k["name"] for k in langflow.keys].count("digitlify-marketplace") == 1 and len(langflow.flows) == 1
    flow_line = f"# flow 'Marketplace echo' (endpoint marketplace-echo): {flow['id']}"
    assert without_key.stdout.splitlines()[0] == f"LANGFLOW_URL={langflow.url}"
    assert without_key.stdout.splitlines()[1].startswith("# LANGFLOW_API_KEY: keep the value you have")
    assert without_key.stdout.splitlines()[2:] == [flow_line]
    assert "not run (key value unknown)" in without_key.stderr
    assert with_key.stdout.splitlines() == [f"LANGFLOW_URL={langflow.url}", f"LANGFLOW_API_KEY={key['api_key']}",
                                            flow_line]
    assert [r["x-api-key"] for r in runs] == [key["api_key"]]


def test_a_key_that_is_not_the_marketplaces_is_refused_and_nothing_is_made():
    langflow = StandIn()
    try:
        run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD)
        langflow.calls.clear()
        result = run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD,
                            LANGFLOW_API_KEY="sk-_BALnOtTheMarketplacesKey00000000000000000000")
    finally:
        langflow.server.shutdown()
    assert result.returncode == 1 and result.stdout == ""
    assert "LANGFLOW_API_KEY is not the key named 'digitlify-marketplace'" in result.stderr
    assert made(langflow) == []


def test_rotate_key_replaces_the_marketplaces_key_and_keeps_the_flow():
    langflow = StandIn()
    try:
        run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD)
        old, (flow,) = langflow.keys[-1], langflow.flows
        langflow.calls.clear()
        result = run_script(langflow, "--rotate-key", LANGFLOW_ADMIN_PASSWORD=PASSWORD)
    finally:
        langflow.server.shutdown()
    assert result.returncode == 0, result.stderr
    new = langflow.keys[-1]
    assert made(langflow) == [("DELETE", f"/api/v1/api_key/{old['id']}"), ("POST", "/api/v1/api_key/")]
    assert old not in langflow.keys and new["api_key"] != old["api_key"]
    assert [k["name"] for k in langflow.keys] == ["MCP Project Starter Project - default", "digitlify-marketplace"]
    assert f"LANGFLOW_API_KEY={new['api_key']}" in result.stdout.splitlines()
    assert langflow.flows == [flow]


def test_setup_refuses_to_run_without_the_password():
    langflow = StandIn()
    try:
        result = run_script(langflow)
    finally:
        langflow.server.shutdown()
    assert result.returncode == 2 and "LANGFLOW_ADMIN_PASSWORD" in result.stderr
    assert langflow.calls == [] and result.stdout == ""


def test_a_wrong_password_is_named_and_nothing_else_is_called():
    langflow = StandIn()
    try:
        result = run_script(langflow, LANGFLOW_ADMIN_PASSWORD="not-it")
    finally:
        langflow.server.shutdown()
    assert result.returncode == 1 and result.stdout == ""
    assert "Langflow refused 'admin' (Incorrect username or password)" in result.stderr
    assert [(c["method"], c["path"]) for c in langflow.calls] == [("POST", "/api/v1/login")]


def test_a_sign_in_refused_for_too_many_attempts_says_when_to_try_again():
    langflow = StandIn()
    langflow.sign_ins_left = 0
    try:
        result = run_script(langflow, LANGFLOW_ADMIN_PASSWORD=PASSWORD)
    finally:
        langflow.server.shutdown()
    assert result.returncode == 1 and result.stdout == ""
    assert "signing in: Langflow refuses more sign-ins for now; try again in 60 s" in result.stderr
    assert [(c["method"], c["path"]) for c in langflow.calls] == [("POST", "/api/v1/login")]


def test_an_unreachable_langflow_is_a_clear_error():
    langflow = StandIn()
    url = langflow.url
    langflow.server.shutdown()
    langflow.server.server_close()
    result = subprocess.run([sys.executable, str(SCRIPT), "--url", url],
                            env={**os.environ, "LANGFLOW_ADMIN_PASSWORD": PASSWORD},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert f"signing in: cannot reach Langflow at {url}" in result.stderr
