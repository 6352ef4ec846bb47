"""Versions through the API: publishing checks the runtime reference (problem+json naming the field, 503 when
Langflow cannot be asked), and an instance shows `version`, `pinned`, `upgrade_available` and takes pin,
follow and upgrade."""
from __future__ import annotations

import socket

from sqlalchemy import func, select

from app.models import Instance, Offering, OfferingVersion
from app.services import identity, instances
from tests.runtime.fake_langflow import API_KEY, TWO_OUTPUTS_ID

MISSING_FLOW = "0f0e0d0c-0b0a-4909-8807-060504030201"


def _support_agent(session) -> Offering:
    return session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))


def _instance(session, buyer) -> Instance:
    plan = _support_agent(session).plans[0]
    instance = instances.create_instance(session, organization=identity.current_organization(session, buyer),
                                         plan=plan, created_by=buyer)
    session.commit()
    return instance


def _version_count(session) -> int:
    return session.scalar(select(func.count()).select_from(OfferingVersion))


def _publish(client, headers, session, **body):
    return client.post(f"/api/offerings/{_support_agent(session).id}/versions", headers=headers,
                       json={"changelog": "", **body})


def test_publishing_a_missing_flow_is_a_problem_naming_the_field(client, session, demo, operator, auth_for,
                                                                 configured_langflow):
    headers = auth_for(operator)
    before = _version_count(session)

    response = _publish(client, headers, session, version="1.2.0", runtime_kind="langflow", runtime_ref=MISSING_FLOW)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [{"field": "runtime_ref", "message": (
        f"Langflow has no flow “{MISSING_FLOW}”. Choose one of its flows from the list.")}]
    assert _version_count(session) == before


def test_an_unreachable_langflow_answers_503_could_not_check(client, app, session, demo, operator, auth_for):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        app.config.update(LANGFLOW_URL=f"http://127.0.0.1:{sock.getsockname()[1]}", LANGFLOW_API_KEY=API_KEY)
    headers = auth_for(operator)
    before = _version_count(session)

    response = _publish(client, headers, session, version="1.2.0", runtime_kind="langflow", runtime_ref=TWO_OUTPUTS_ID)

    assert response.status_code == 503
    assert response.get_json()["detail"] == ("We could not check this flow: Langflow could not be reached. Nothing "
                                             "was published; try again in a moment.")
    assert response.get_json()["errors"][0]["field"] == "runtime_ref"
    assert _version_count(session) == before


def test_a_published_version_shows_its_tweaks_and_output_component_to_its_publisher(
    client, session, demo, operator, auth_for, configured_langflow,
):
    headers = auth_for(operator)
    tweaks = {"ChatInput-a1": {"should_store_message": False}}

    refused = _publish(client, headers, session, version="1.2.0", runtime_kind="langflow", runtime_ref=TWO_OUTPUTS_ID,
                       tweaks={"ChatInput-a1": {"code": "import os"}})
    created = _publish(client, headers, session, version="1.2.0", runtime_kind="langflow", runtime_ref=TWO_OUTPUTS_ID,
                       output_component="ChatOutput-main", tweaks=tweaks)

    assert refused.status_code == 400 and refused.get_json()["errors"][0]["field"] == "tweaks"
    assert created.status_code == 201
    body = created.get_json()
    assert (body["version"], body["output_component"], body["tweaks"]) == ("1.2.0", "ChatOutput-main", tweaks)
    public = client.get(f"/api/offerings/{_support_agent(session).id}").get_json()
    assert [(v["version"], v["tweaks"], v["output_component"]) for v in public["versions"]][-1] == (
        "1.2.0", None, None)


def test_an_instance_follows_its_line_pins_and_takes_an_upgrade_only_when_accepted(
    client, session, demo, buyer, operator, auth_for,
):
    instance = _instance(session, buyer)
    buyer_headers, operator_headers = auth_for(buyer), auth_for(operator)
    url = f"/api/instances/{instance.id}"

    first = client.get(url, headers=buyer_headers).get_json()
    _publish(client, operator_headers, session, version="1.1.1", runtime_kind="builtin", runtime_ref="summarize")
    patched = client.get(url, headers=buyer_headers).get_json()
    pinned = client.post(f"{url}/pin", headers=buyer_headers, json={"version": "1.1.0"})
    _publish(client, operator_headers, session, version="2.0.0", runtime_kind="builtin", runtime_ref="triage",
             changelog="Routes tickets.")
    offered = client.get(url, headers=buyer_headers).get_json()
    wrong = client.post(f"{url}/upgrade", headers=buyer_headers, json={"version": "1.1.1"})
    upgraded = client.post(f"{url}/upgrade", headers=buyer_headers, json={"version": "2.0.0"})
    followed = client.post(f"{url}/follow", headers=buyer_headers)

    assert (first["version"], first["pinned"], first["upgrade_available"]) == ("1.1.0", False, None)
    assert patched["version"] == "1.1.1"
    assert pinned.status_code == 200
    assert (pinned.get_json()["version"], pinned.get_json()["pinned"]) == ("1.1.0", True)
    assert (offered["version"], offered["upgrade_available"]) == (
        "1.1.0", {"version": "2.0.0", "changelog": "Routes tickets."})
    assert wrong.status_code == 409
    assert wrong.get_json()["errors"] == [{"field": "version", "message": (
        "The upgrade on offer is 2.0.0; review its notes and accept that one.")}]
    assert upgraded.status_code == 200
    assert (upgraded.get_json()["version"], upgraded.get_json()["pinned"],
            upgraded.get_json()["upgrade_available"]) == ("2.0.0", True, None)
    assert (followed.status_code, followed.get_json()["pinned"], followed.get_json()["version"]) == (
        200, False, "2.0.0")


def test_another_organization_cannot_pin_or_upgrade(client, session, demo, buyer, operator, auth_for):
    from tests.factories import make_user

    instance = _instance(session, buyer)
    stranger = make_user(session, email="stranger@example.com")
    session.commit()
    headers = auth_for(stranger)

    answers = [client.post(f"/api/instances/{instance.id}/pin", headers=headers, json={}).status_code,
               client.post(f"/api/instances/{instance.id}/upgrade", headers=headers,
                           json={"version": "2.0.0"}).status_code,
               client.post(f"/api/instances/{instance.id}/follow", headers=headers).status_code]

    assert answers == [404, 404, 404]
    session.expire_all()
    assert session.get(Instance, instance.id).version_pinned is False


def test_the_version_operations_are_in_the_openapi_document(client):
    document = client.get("/api/openapi.json").get_json()

    for path in ("pin", "follow", "upgrade"):
        operation = document["paths"][f"/api/instances/{{instance_id}}/{path}"]["post"]
        assert "200" in operation["responses"] and "404" in operation["responses"]
    instance = document["components"]["schemas"]
    assert {"version", "pinned", "upgrade_available"} <= set(next(
        s for name, s in instance.items() if name.startswith("InstanceOut"))["properties"])
    versions = document["paths"]["/api/offerings/{offering_id}/versions"]["post"]
    assert "503" in versions["responses"]
