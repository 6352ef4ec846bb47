"""The OpenAPI 3.1 document of the control plane, generated from the code with spectree.

Why spectree: it works with plain Flask function views (our cp style, no resource classes), takes
pydantic v2 models for bodies, queries and responses, validates both directions at run time with
the same models it documents, and emits OpenAPI 3.1.0 whose schemas are pydantic's own JSON Schema
2020-12 (3.1's dialect) without translation. flask-smorest wants marshmallow schemas and
MethodViews; flask-openapi3 replaces Flask's routing decorators with its own; apispec alone would
mean writing the operations by hand.

Views use, outermost first::

    @bp.post("/organizations/")
    @api_auth(*USER_KINDS)                      # who may call (app.cp.auth)
    @spec.validate(resp=responses(201, OrganizationOut, 409), tags=["organizations"])
    def create_organization(json: OrganizationCreate): ...

spectree describes bodies and responses; this module adds what it does not know from the code:
each operation's security schemes (read from the ``api_auth`` kinds on the view), the 401/403
answers and the optional ``X-Organization-Id`` header that come with them, and the
``application/problem+json`` media type of every error response.
"""
from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app
from spectree import Response, SpecTree

from app.cp import schemas
from app.web import problem

# operation security, by api_auth kind
SECURITY_SCHEMES: dict[str, tuple[str, dict[str, Any]]] = {
    "session": ("sessionCookie", {
        "type": "apiKey", "in": "cookie", "name": "dm_session",
        "description": "The browser session of a signed-in person. Unsafe methods also need the page's CSRF "
                       "token in the X-CSRFToken header, and are refused cross-origin.",
    }),
    "bearer": ("oidcAccessToken", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An access token of the single sign-on provider (only when AUTH_BACKEND=oidc).",
    }),
    "pat": ("personalAccessToken", {
        "type": "http", "scheme": "bearer", "bearerFormat": "dmp_…",
        "description": "A personal access token created in account settings or with POST /api/tokens/.",
    }),
    "api_key": ("instanceApiKey", {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "An instance API key (dmk_…); it acts only on its own instance.",
    }),
    "service": ("gatewayServiceToken", {
        "type": "http", "scheme": "bearer",
        "description": "The run gateway's service credential (GATEWAY_SERVICE_TOKEN).",
    }),
}

DESCRIPTION = """The Digitlify Marketplace control plane: organizations, offerings, instances and trials,
API keys, wallets and credit holds, entitlements, connectors and the audit log.

Errors are RFC 9457 `application/problem+json`; a request that does not match its schema gets 422
with `errors: [{field, message}]` naming each wrong input. Money is integer minor units with an
ISO 4217 currency; credits are integers.

People call with their browser session (plus `X-CSRFToken` on unsafe methods), a personal access
token, or (with single sign-on) an access token; they may name the organization they act in with
`X-Organization-Id`. Runtimes call with their instance's `X-API-Key`; the run gateway with its
service token."""


def _model_name(model) -> str:
    return model.__name__


def _on_invalid_request(req, resp, req_validation_error, instance, model_adapter) -> None:
    """Schema violations as problem+json naming each field (spectree's default is a bare list)."""
    if req_validation_error is None:
        return
    errors = []
    for error in req_validation_error.errors(include_url=False, include_context=False, include_input=False):
        location = ".".join(str(part) for part in error.get("loc", ())) or "body"
        errors.append({"field": location, "message": error.get("msg", "Invalid value.")})
    abort(problem(422, "Unprocessable Content", "The request does not match the schema.", errors=errors))


spec = SpecTree(
    "flask",
    mode="strict",
    title="Digitlify Marketplace control plane",
    version="1.0.0",
    description=DESCRIPTION,
    path="_spectree_unused",  # spectree skips routes under its own doc path; ours are served by views.py
    naming_strategy=_model_name,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=422,
    validation_error_model=schemas.ValidationProblem,
    before=_on_invalid_request,
    annotations=True,
)


def responses(status: int, model=None, *errors: int) -> Response:
    """A spectree Response: `model` for the success `status`, problem+json for each error status."""
    codes: dict[str, Any] = {f"HTTP_{status}": model}
    for code in errors:
        codes[f"HTTP_{code}"] = schemas.Problem
    return Response(**codes)


def document() -> dict[str, Any]:
    """The OpenAPI document of the current app, built once per app."""
    cached = current_app.extensions.get("cp_openapi")
    if cached is None:
        # a JSON round trip: plain lists and dicts only (spectree leaves tuples, e.g. of `any` converters)
        cached = _complete(json.loads(json.dumps(spec.spec)))
        current_app.extensions["cp_openapi"] = cached
    return cached


def _complete(doc: dict[str, Any]) -> dict[str, Any]:
    doc.pop("tags", None)
    doc["tags"] = [{"name": name, "description": text} for name, text in TAGS]
    doc["servers"] = [{"url": "/", "description": "This server"}]
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {name: scheme for name, scheme in SECURITY_SCHEMES.values()}
    components["parameters"] = {"OrganizationHeader": ORG_HEADER_PARAMETER}
    schemas_ = components.setdefault("schemas", {})
    schemas_.setdefault("Problem", schemas.Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path, methods in doc.get("paths", {}).items():
        for method, operation in methods.items():
            kinds = _auth_kinds(path, method)
            if kinds:
                _add_security(operation, kinds)
            if "requestBody" in operation:
                operation["responses"].setdefault("415", {
                    "description": "The body is not sent as application/json.", "content": _problem_ref()})
            for answer in operation.get("responses", {}).values():
                content = answer.get("content") or {}
                schema_ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if schema_ref.rsplit("/", 1)[-1] in ("Problem", "ValidationProblem"):
                    answer["content"] = {"application/problem+json": content.pop("application/json")}
    _add_event_streams(doc.get("paths", {}))
    doc.pop("security", None)
    return doc


# operations that answer 200 with Server-Sent Events (the stream is not JSON, so spectree cannot describe it)
EVENT_STREAMS = {("/api/runs/{run_id}/events", "get"), ("/api/instances/{instance_id}/runs", "post")}
EVENT_STREAM_CONTENT = {"text/event-stream": {"schema": {
    "type": "string", "description": "Events `id: <seq>`, `event: status|token|done|error`, `data: <JSON>`."}}}


def _add_event_streams(paths: dict[str, Any]) -> None:
    for path, method in EVENT_STREAMS:
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        answer = operation.setdefault("responses", {}).setdefault("200", {"description": "The run's events."})
        answer.setdefault("content", {}).update(EVENT_STREAM_CONTENT)


ORG_HEADER_PARAMETER = {
    "name": "X-Organization-Id", "in": "header", "required": False,
    "description": "Act in this organization (you must be a member); default: your current organization.",
    "schema": {"type": "integer", "minimum": 1, "maximum": schemas.MAX_ID},
}

TAGS = [
    ("organizations", "Organizations and their members."),
    ("offerings", "The catalog, and publishing for sellers and operators."),
    ("reviews", "Reviews and ratings of offerings: by verified buyers and trial users, replied to by publishers."),
    ("instances", "Subscriptions and trials, their lifecycle, entitlements and API keys."),
    ("subscriptions", "A paid instance's billing: its period and next charge, ending at the period's end or "
                      "resuming, and plan changes (upgrades charged prorated now, downgrades at the next period)."),
    ("runs", "Runs of an instance's agent: start (answered at once, streamed, or waited for), read, follow "
             "their events, cancel."),
    ("orders", "Your orders, and the invoices and credit notes of your organizations (also as PDF)."),
    ("earnings", "A publisher's earnings per month (sales, refunds, fees, net, payouts, balance owed), monthly "
                 "statements, and the payouts received."),
    ("tokens", "Personal access tokens."),
    ("wallets", "Credits: balances and the ledger."),
    ("billing", "Credit holds for runs: authorize, settle, release."),
    ("connectors", "Connector bindings; their secrets are never returned."),
    ("audit", "The audit log."),
    ("health", "Liveness."),
]


def _problem_ref() -> dict[str, Any]:
    return {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _add_security(operation: dict[str, Any], kinds: tuple[tuple[str, ...], bool]) -> None:
    accepted, optional = kinds
    requirements = [{SECURITY_SCHEMES[kind][0]: []} for kind in accepted]
    operation["security"] = ([{}] if optional else []) + requirements
    answers = operation.setdefault("responses", {})
    answers.setdefault("401", {"description": "No valid credential of an accepted kind.",
                               "content": _problem_ref()})
    answers.setdefault("403", {"description": "A credential of a kind this operation does not accept, "
                                              "or a session request without its CSRF token.",
                               "content": _problem_ref()})
    if any(kind in ("session", "bearer", "pat") for kind in accepted):
        operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/OrganizationHeader"})
        answers.setdefault("404", {"description": "Not found (also: X-Organization-Id names an organization "
                                                  "you are not a member of).", "content": _problem_ref()})
        answers.setdefault("422", {"description": "Invalid input.", "content": _problem_ref()})
    if "bearer" in accepted:
        answers.setdefault("503", {"description": "The identity provider could not be asked.",
                                   "content": _problem_ref()})


def takes_json_body(rule, method: str) -> bool:
    """Whether the operation behind this URL rule and method reads a JSON body (per the document)."""
    cache = current_app.extensions.setdefault("cp_json_bodies", {})
    key = (rule.endpoint, method)
    if key not in cache:
        path, _ = spec.backend.parse_path(rule, None)
        operation = document().get("paths", {}).get(path, {}).get(method.lower(), {})
        cache[key] = "application/json" in operation.get("requestBody", {}).get("content", {})
    return cache[key]


def _auth_kinds(path: str, method: str) -> tuple[tuple[str, ...], bool] | None:
    view = _view_for(path, method)
    while view is not None:
        kinds = getattr(view, "api_auth_kinds", None)
        if kinds is not None:
            return kinds, getattr(view, "api_auth_optional", False)
        view = getattr(view, "__wrapped__", None)
    return None


def _view_for(path: str, method: str):
    for rule in current_app.url_map.iter_rules():
        if method.upper() not in (rule.methods or ()):
            continue
        rule_path, _ = spec.backend.parse_path(rule, None)
        if rule_path == path:
            return current_app.view_functions[rule.endpoint]
    return None
