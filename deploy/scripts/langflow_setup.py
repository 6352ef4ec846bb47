"""Connect a Langflow to the marketplace, once per Langflow: an API key for the marketplace's gateway and
the flows the marketplace needs, each made only when no flow of its name exists yet.

    LANGFLOW_ADMIN_PASSWORD=... python deploy/scripts/langflow_setup.py --url http://127.0.0.1:7860 \
        --marketplace-url http://langflow:7860

Signs in as the Langflow superuser (--username; the password is read from LANGFLOW_ADMIN_PASSWORD, never
from the command line). Prints the lines to add to the marketplace's environment, and for each flow a
comment with its id: a seller enters that id as the "Agent or flow id" of an offering version whose
runtime is "Langflow flow". A second run reuses the key and the flows it finds by name. Langflow shows a
key's value only when it is made, so a second run prints the key line only when LANGFLOW_API_KEY holds the
key made before (it is checked); --rotate-key replaces the key instead. When the key is known, each flow is
run once with it to prove the pair works.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

import requests

TIMEOUT = (5, 30)  # connect, read: Langflow answers these calls in well under a second once it is up
RUN_TIMEOUT = (5, 60)  # a first run builds the flow's graph
KEY_NAME = "digitlify-marketplace"
TEMPLATE = "basic_prompting"  # the bundled starter project whose Chat Input and Chat Output the flows reuse


class LangflowError(SystemExit):
    """Stops the script with a message that names the call that failed."""


class Langflow:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def call(self, what: str, method: str, path: str, *, expect=(200,), timeout=TIMEOUT, **kwargs):
        url = f"{self.url}{path}"
        try:
            answer = self.http.request(method, url, timeout=timeout, **kwargs)
        except requests.Timeout as exc:
            raise LangflowError(f"{what}: Langflow at {self.url} did not answer in time ({exc})") from exc
        except requests.RequestException as exc:
            raise LangflowError(f"{what}: cannot reach Langflow at {self.url} ({type(exc).__name__})") from exc
        if answer.status_code not in expect:
            raise LangflowError(f"{what}: {method} {path} answered HTTP {answer.status_code}: {answer.text[:300]}")
        try:
            return answer.json()
        except ValueError as exc:
            raise LangflowError(f"{what}: {method} {path} answered something that is not JSON") from exc

    def sign_in(self, username: str, password: str) -> None:
        token = self.call("signing in", "POST", "/api/v1/login", expect=(200, 401, 429),
                          data={"username": username, "password": password})
        if "retry_after" in token:  # Langflow allows a few sign-ins a minute from one address
            raise LangflowError(f"signing in: Langflow refuses more sign-ins for now; try again in "
                                f"{token['retry_after']} s")
        if "access_token" not in token:
            raise LangflowError(f"signing in: Langflow refused {username!r} ({token.get('detail')}); "
                                "check LANGFLOW_ADMIN_PASSWORD")
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"


def echo_flow(template: dict) -> dict:
    """Chat Input wired straight to Chat Output: answers with its input, needs no model."""
    nodes = {node["data"]["type"]: node for node in template["data"]["nodes"]}
    try:
        chat_input, chat_output = nodes["ChatInput"], nodes["ChatOutput"]
    except KeyError as exc:
        raise LangflowError(f"the starter project {TEMPLATE!r} has no {exc.args[0]} component") from exc
    source, target = f"ChatInput-{uuid.uuid4().hex[:5]}", f"ChatOutput-{uuid.uuid4().hex[:5]}"
    into_output = next(e for e in template["data"]["edges"] if e["target"] == chat_output["id"])
    source_handle = {"dataType": "ChatInput", "id": source, "name": "message", "output_types": ["Message"]}
    target_handle = {**into_output["data"]["targetHandle"], "id": target}
    return {"nodes": [
        {**chat_input, "id": source, "type": "genericNode", "position": {"x": 0, "y": 0},
         "data": {**chat_input["data"], "id": source}},
        {**chat_output, "id": target, "type": "genericNode", "position": {"x": 400, "y": 0},
         "data": {**chat_output["data"], "id": target}},
    ], "edges": [{
        "id": f"reactflow__edge-{source}{editor_handle(source_handle)}-{target}{editor_handle(target_handle)}",
        "source": source, "sourceHandle": editor_handle(source_handle),
        "target": target, "targetHandle": editor_handle(target_handle),
        "data": {"sourceHandle": source_handle, "targetHandle": target_handle},
    }], "viewport": {"x": 0, "y": 0, "zoom": 1}}


def editor_handle(handle: dict) -> str:
    """A handle as Langflow's editor writes it beside the edge: its JSON with every quote as "œ"."""
    return json.dumps(handle).replace('"', "œ")


# name, endpoint name, description, builder (from the starter project), a test input and the output it must give
FLOWS = [
    ("Marketplace echo", "marketplace-echo", "Answers with the message it is sent; needs no model.", echo_flow,
     "ping from the marketplace", "ping from the marketplace"),
]


def ensure_key(lf: Langflow, name: str, known: str | None, rotate: bool) -> tuple[str | None, str]:
    """(the key's value if known, what was done)."""
    keys = [k for k in lf.call("listing API keys", "GET", "/api/v1/api_key/")["api_keys"] if k.get("name") == name]
    if keys and rotate:
        for key in keys:
            lf.call("deleting the old API key", "DELETE", f"/api/v1/api_key/{key['id']}")
        keys = []
    if not keys:
        made = lf.call("creating the API key", "POST", "/api/v1/api_key/", json={"name": name})
        return made["api_key"], "made"
    if known:
        # the list shows the first 8 characters of each key and masks the rest
        if not any(k["api_key"][:8] == known[:8] and len(k["api_key"]) == len(known) for k in keys):
            raise LangflowError(f"LANGFLOW_API_KEY is not the key named {name!r}; unset it, or pass --rotate-key")
        return known, "kept"
    return None, "kept, value not shown"


def ensure_flows(lf: Langflow) -> list[tuple[tuple, str, str]]:
    """[(flow spec, id, what was done)] for every flow in FLOWS."""
    existing = {f["name"]: f for f in lf.call("listing flows", "GET", "/api/v1/flows/", params={
        "remove_example_flows": "true", "header_flows": "true", "get_all": "true"})}
    result, template = [], None
    for spec in FLOWS:
        name, endpoint, description, build, *_ = spec
        if name in existing:
            result.append((spec, existing[name]["id"], "kept"))
            continue
        if template is None:
            starters = lf.call("reading the starter projects", "GET", "/api/v1/starter-projects/")
            template = next((s for s in starters if s.get("name_key") == TEMPLATE), None)
            if template is None:
                raise LangflowError(f"this Langflow has no starter project {TEMPLATE!r} to take components from")
        made = lf.call(f"creating the flow {name!r}", "POST", "/api/v1/flows/", expect=(201,), json={
            "name": name, "endpoint_name": endpoint, "description": description, "data": build(template)})
        result.append((spec, made["id"], "made"))
    return result


def check_flow(lf: Langflow, key: str, flow_id: str, name: str, sent: str, expected: str) -> float:
    """Run the flow once with the key, as the marketplace does; the seconds it took."""
    started = time.monotonic()
    answer = lf.call(f"running the flow {name!r}", "POST", f"/api/v1/run/{flow_id}", timeout=RUN_TIMEOUT,
                     params={"stream": "false"}, headers={"x-api-key": key, "Authorization": None},
                     json={"input_value": sent, "input_type": "chat", "output_type": "chat",
                           "session_id": f"langflow-setup-{uuid.uuid4()}"})
    try:
        text = answer["outputs"][0]["outputs"][0]["results"]["message"]["text"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LangflowError(f"running the flow {name!r}: no message in its answer: {str(answer)[:300]}") from exc
    if text != expected:
        raise LangflowError(f"running the flow {name!r}: it answered {text!r}, expected {expected!r}")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="Langflow as this machine reaches it, e.g. http://127.0.0.1:7860")
    parser.add_argument("--marketplace-url", help="Langflow as the marketplace reaches it (default: --url)")
    parser.add_argument("--username", default="admin", help="the Langflow superuser (LANGFLOW_SUPERUSER)")
    parser.add_argument("--key-name", default=KEY_NAME, help="the name of the marketplace's API key in Langflow")
    parser.add_argument("--rotate-key", action="store_true", help="delete the key of that name and make a new one")
    args = parser.parse_args(argv)
    password = os.environ.get("LANGFLOW_ADMIN_PASSWORD")
    if not password:
        parser.error("set LANGFLOW_ADMIN_PASSWORD to the Langflow superuser's password")

    lf = Langflow(args.url)
    lf.sign_in(args.username, password)
    try:
        key, key_done = ensure_key(lf, args.key_name, os.environ.get("LANGFLOW_API_KEY") or None, args.rotate_key)
        flows = ensure_flows(lf)
    except (KeyError, TypeError, StopIteration) as exc:
        raise LangflowError(f"Langflow at {lf.url} answered in a shape this script does not know "
                            f"({type(exc).__name__}: {exc}); it was written for Langflow 1.13") from exc
    print(f"# API key {args.key_name!r}: {key_done}", file=sys.stderr)
    for (name, _endpoint, _description, _build, sent, expected), flow_id, done in flows:
        checked = (f"answered in {check_flow(lf, key, flow_id, name, sent, expected):.1f} s" if key
                   else "not run (key value unknown)")
        print(f"# flow {name!r}: {done}, {checked}", file=sys.stderr)

    print(f"LANGFLOW_URL={(args.marketplace_url or args.url).rstrip('/')}")
    if key:
        print(f"LANGFLOW_API_KEY={key}")
    else:
        print("# LANGFLOW_API_KEY: keep the value you have (Langflow shows a key only when it is made; "
              "--rotate-key makes a new one)")
    for (name, endpoint, *_), flow_id, _done in flows:
        print(f"# flow {name!r} (endpoint {endpoint}): {flow_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
