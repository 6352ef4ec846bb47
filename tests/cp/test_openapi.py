"""The OpenAPI document: valid 3.1, complete, and true to the running API (schemathesis)."""
import threading

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from app.models import Offering
from tests.cp.conftest import SERVICE_TOKEN

EXAMPLES_PER_OPERATION = 6

EXPECTED_OPERATIONS = {
    ("get", "/api/health"), ("get", "/api/organizations/"), ("post", "/api/organizations/"),
    ("get", "/api/organizations/{organization_id}"), ("get", "/api/organizations/{organization_id}/members/"),
    ("post", "/api/organizations/{organization_id}/members/"),
    ("patch", "/api/organizations/{organization_id}/members/{user_id}"),
    ("delete", "/api/organizations/{organization_id}/members/{user_id}"),
    ("get", "/api/organizations/{organization_id}/offerings"),
    ("get", "/api/offerings/"), ("post", "/api/offerings/"), ("get", "/api/offerings/{offering_id}"),
    ("patch", "/api/offerings/{offering_id}"), ("post", "/api/offerings/{offering_id}/versions"),
    ("put", "/api/offerings/{offering_id}/plans/{tier}"), ("post", "/api/offerings/{offering_id}/submit"),
    ("post", "/api/offerings/{offering_id}/approve"), ("post", "/api/offerings/{offering_id}/reject"),
    ("post", "/api/offerings/{offering_id}/archive"),
    ("get", "/api/instances/"), ("post", "/api/instances/trial"), ("get", "/api/instances/{instance_id}"),
    ("post", "/api/instances/{instance_id}/suspend"), ("post", "/api/instances/{instance_id}/resume"),
    ("post", "/api/instances/{instance_id}/cancel"), ("get", "/api/instances/{instance_id}/entitlements"),
    ("get", "/api/instances/{instance_id}/keys/"), ("post", "/api/instances/{instance_id}/keys/"),
    ("post", "/api/instances/{instance_id}/keys/{key_id}/revoke"),
    ("get", "/api/tokens/"), ("post", "/api/tokens/"), ("post", "/api/tokens/{token_id}/revoke"),
    ("get", "/api/wallets/me"), ("get", "/api/wallets/me/ledger"),
    ("post", "/api/billing/authorize"), ("post", "/api/billing/settle"), ("post", "/api/billing/release"),
    ("get", "/api/connectors/bindings/"), ("post", "/api/connectors/bindings/"),
    ("post", "/api/connectors/bindings/{binding_id}/revoke/"), ("get", "/api/audit/"),
    ("get", "/api/offerings/{offering_id}/reviews"), ("post", "/api/offerings/{offering_id}/reviews"),
    ("patch", "/api/reviews/{review_id}"), ("post", "/api/reviews/{review_id}/reply"),
    ("post", "/api/reviews/{review_id}/helpful"), ("post", "/api/reviews/{review_id}/hide"),
    ("get", "/api/instances/{instance_id}/subscription"),
    ("post", "/api/instances/{instance_id}/subscription/cancel-at-period-end"),
    ("post", "/api/instances/{instance_id}/subscription/resume"),
    ("get", "/api/instances/{instance_id}/subscription/plan-change"),
    ("post", "/api/instances/{instance_id}/subscription/plan"),
    ("get", "/api/organizations/{organization_id}/earnings"),
    ("get", "/api/organizations/{organization_id}/earnings/{month}"),
    ("get", "/api/organizations/{organization_id}/payouts"),
    ("get", "/api/orders/"), ("get", "/api/orders/{order_id}"), ("get", "/api/invoices/"),
    ("get", "/api/invoices/{invoice_id}"), ("get", "/api/invoices/{invoice_id}/pdf"),
    ("get", "/api/orders/{order_id}/refunds"), ("post", "/api/orders/{order_id}/refunds"),
}


def test_document_is_valid_openapi_3_1_and_lists_every_operation(client):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    operations = {(method, path) for path, methods in document["paths"].items() for method in methods}
    assert EXPECTED_OPERATIONS <= operations


def test_errors_are_documented_as_problem_json_and_operations_name_their_credentials(client):
    document = client.get("/api/openapi.json").get_json()

    authorize = document["paths"]["/api/billing/authorize"]["post"]
    assert authorize["security"] == [{"gatewayServiceToken": []}, {"instanceApiKey": []}]
    assert list(authorize["responses"]["402"]["content"]) == ["application/problem+json"]
    assert list(authorize["responses"]["201"]["content"]) == ["application/json"]
    assert document["paths"]["/api/offerings/"]["get"]["security"][0] == {}  # public
    assert "X-API-Key" == document["components"]["securitySchemes"]["instanceApiKey"]["name"]


def test_docs_page_uses_local_swagger_assets(client):
    page = client.get("/api/docs").get_data(as_text=True)

    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "/static/js/api-docs.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
    assert 'data-spec-url="/api/openapi.json"' in page


def test_every_operation_answers_inside_its_schema_and_never_5xx(app, session, demo, operator, auth_for):
    """Schemathesis generates requests for every operation from the document (derandomized, a few per
    operation so the run stays short) and checks each answer: never a 5xx; status code, content type,
    headers and body as documented; auth enforced (a request without the credential is refused).

    Left out: `positive_data_acceptance`, because schema-valid input may still break a business rule
    JSON Schema cannot state (an unknown facet value, a version lower than the last one), and that
    answer is a documented 400/409 problem, not a defect."""
    people = auth_for(operator)["Authorization"].removeprefix("Bearer ")  # reaches user, review, operator calls
    config = schemathesis.Config.from_dict({"auth": {"openapi": {
        "personalAccessToken": {"bearer": people}, "gatewayServiceToken": {"bearer": SERVICE_TOKEN},
    }}})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)
    failures = {}
    tested = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        tested.add((operation.method.lower(), operation.path))

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = str(exc)[:2000]

    assert EXPECTED_OPERATIONS <= tested
    assert failures == {}


ENGINE_EXAMPLES = 3  # per operation and phase: the run stays well under a minute on SQLite and PostgreSQL


def test_coverage_fuzzing_and_stateful_phases_find_no_server_error_and_no_undocumented_answer(
        app, session, demo, operator, auth_for):
    """The full schemathesis engine, as its command line runs it, against the app served over HTTP:
    the coverage phase (boundary and negative values of every parameter: out-of-range ids, wrong
    types, missing fields, undeclared media types, unexpected methods), the fuzzing phase, and the
    stateful phase, which follows the links it infers between operations (a created offering,
    organization, token or key, then used by id). Every answer is checked: never a 5xx; status,
    content type, headers and body as documented; negative data refused; auth enforced.

    Deterministic (fixed seed, no example database) and bounded (ENGINE_EXAMPLES per operation).
    Left out, as above: `positive_data_acceptance`."""
    from werkzeug.serving import make_server

    from schemathesis.engine import Status, events, from_schema
    from schemathesis.engine.run import PhaseName

    people = auth_for(operator)["Authorization"].removeprefix("Bearer ")
    config = schemathesis.Config.from_dict({
        "seed": 20261206, "workers": 1, "cache": {"enabled": False},
        "generation": {"max-examples": ENGINE_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "phases": {"examples": {"enabled": False}, "stateful": {"max-steps": 10}},
        "auth": {"openapi": {"personalAccessToken": {"bearer": people},
                             "gatewayServiceToken": {"bearer": SERVICE_TOKEN}}},
    })
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    failures, errors, answers, phases = [], [], {}, {}
    try:
        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{server.server_port}/api/openapi.json",
                                               config=config)
        for event in from_schema(schema).execute():
            if isinstance(event, events.PhaseFinished):
                phases[event.phase.name] = event.status
            elif isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
                phase = getattr(event, "phase", PhaseName.FUZZING)
                answers[phase] = answers.get(phase, 0) + len(event.recorder.interactions)
                for case_id, checks in event.recorder.checks.items():
                    for check in checks:
                        if check.status == Status.FAILURE:
                            case = event.recorder.cases[case_id].value
                            response = event.recorder.find_response(case_id=case_id)
                            failures.append((event.recorder.label, check.name,
                                             response.status_code if response else None,
                                             str(check.failure_info.failure.message)[:300] if check.failure_info
                                             else "", repr(case.body)[:200], repr(case.query)[:200]))
            elif isinstance(event, (events.NonFatalError, events.FatalError)):
                errors.append(repr(getattr(event, "value", None) or getattr(event, "exception", None))[:500])
            elif isinstance(event, events.EngineFinished):
                stop_reason = event.stop_reason
    finally:
        server.shutdown()
        thread.join(timeout=10)

    assert errors == []
    assert sorted(set(failures)) == []
    assert stop_reason == "completed"
    assert {phases[name] for name in (PhaseName.COVERAGE, PhaseName.FUZZING, PhaseName.STATEFUL_TESTING)} == {
        Status.SUCCESS}
    assert answers[PhaseName.COVERAGE] > 1000 and answers[PhaseName.FUZZING] > 100
    assert answers[PhaseName.STATEFUL_TESTING] > 10  # links were followed


def test_a_json_operation_refuses_another_media_type_with_415(client, session, demo, operator, auth_for):
    headers = auth_for(operator)

    response = client.post("/api/organizations/", data={"name": "Form Team"}, headers=headers)

    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [{"field": "Content-Type", "message": "Use application/json."}]
    document = client.get("/api/openapi.json").get_json()
    assert "415" in document["paths"]["/api/organizations/"]["post"]["responses"]
    assert "415" not in document["paths"]["/api/organizations/"]["get"]["responses"]


def test_a_json_operation_refuses_a_body_that_is_not_json(client, session, demo, operator, auth_for):
    headers = {**auth_for(operator), "Content-Type": "application/json"}
    offering_id = session.scalar(select(Offering.id).where(Offering.slug == "customer-support-agent"))
    before = session.get(Offering, offering_id).name

    for body in (b's"\xf8\xc4', b"null", b""):
        response = client.patch(f"/api/offerings/{offering_id}", data=body, headers=headers)

        assert response.status_code == 422
        assert response.get_json()["errors"] == [{"field": "body", "message": "Send a JSON object."}]
    session.expire_all()
    assert session.get(Offering, offering_id).name == before
