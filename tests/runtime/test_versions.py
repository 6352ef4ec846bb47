"""Versions that work and reach buyers: a version's agent or flow is checked before it is published (against a
Langflow stand-in), instances follow the latest version of their major line unless pinned, and a new major is
applied only when its buyer accepts it."""
from __future__ import annotations

import importlib.util
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.adapters.runtime import RunContext, RuntimeUnavailable, get_runtime
from app.adapters.runtime.langflow import LangflowRuntime
from app.models import AuditEvent, Instance, Offering, OfferingVersion
from app.services import offerings, runs
from app.services.offerings import OfferingError
from tests.runtime import fake_langflow
from tests.runtime.fake_langflow import API_KEY, FLOW_ID, NO_OUTPUT_ID, TWO_OUTPUTS_ID
from tests.runtime.test_gateway import QUESTION, make_instance

ROOT = Path(__file__).resolve().parents[2]
MISSING_FLOW = "0f0e0d0c-0b0a-4909-8807-060504030201"


@pytest.fixture
def langflow():
    server, state = fake_langflow.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def support_agent(session) -> Offering:
    return session.scalar(select(Offering).where(Offering.slug == "customer-support-agent"))


def version_count(session) -> int:
    return session.scalar(select(func.count()).select_from(OfferingVersion))


def publish(session, operator, number, ref="summarize", kind="builtin", changelog="", **options):
    version = offerings.add_version(session, offering=support_agent(session), actor=operator, version=number,
                                    changelog=changelog, runtime_kind=kind, runtime_ref=ref, **options)
    session.commit()
    return version


def ref_of_next_run(session, instance) -> str:
    session.expire_all()
    instance = session.get(Instance, instance.id)
    prepared = runs.start_run(session, instance=instance, input_text=QUESTION)
    session.rollback()  # the run is not needed: which version it would use is the question
    return prepared.runtime_ref


# --- the Langflow adapter: listing and describing flows ---------------------------------------------


def test_list_flows_asks_for_the_owners_flows_without_templates_and_leaves_out_components(langflow):
    flows = LangflowRuntime(base_url=langflow.url, api_key=API_KEY).list_flows()

    assert [(f.kind, f.ref, f.name) for f in flows] == [
        ("langflow", FLOW_ID, "Echo"), ("langflow", NO_OUTPUT_ID, "Ingest documents"),
        ("langflow", TWO_OUTPUTS_ID, "Two answers")]
    [request] = langflow.requests
    assert (request.path, request.query["remove_example_flows"], request.query["header_flows"]) == (
        "/api/v1/flows/", ["true"], ["true"])
    assert request.headers["x-api-key"] == API_KEY


def test_describe_reads_the_flows_components_by_id_or_endpoint_name(langflow):
    runtime = LangflowRuntime(base_url=langflow.url, api_key=API_KEY)

    by_id = runtime.describe(TWO_OUTPUTS_ID)
    by_name = runtime.describe("two-outputs")

    assert (by_id.name, by_id.chat_inputs, by_id.chat_outputs) == (
        "Two answers", ("ChatInput-a1",), ("ChatOutput-main", "ChatOutput-other"))
    assert by_id.output_components == ("ChatOutput-main", "ChatOutput-other")
    assert by_id.components[0].fields["should_store_message"] == "bool"
    assert by_id.components[0].fields["code"] == "code"
    assert (by_name.ref, by_name.chat_outputs) == ("two-outputs", by_id.chat_outputs)
    assert runtime.describe(MISSING_FLOW) is None
    assert runtime.describe("no-such-endpoint") is None


def test_an_unreachable_slow_or_unconfigured_langflow_is_unavailable_not_an_error(langflow):
    cases = {
        "down": LangflowRuntime(base_url=closed_port_url(), api_key=API_KEY),
        "slow": LangflowRuntime(base_url=langflow.url, api_key=API_KEY, check_timeout=0.2),
        "unconfigured": LangflowRuntime(base_url="", api_key=""),
        "bad key": LangflowRuntime(base_url=langflow.url, api_key="sk-wrong", check_timeout=2),
    }
    messages = {}
    for name, runtime in cases.items():
        langflow.flows_delay = 1.0 if name == "slow" else 0.0  # answers after the check timeout
        started = time.monotonic()
        with pytest.raises(RuntimeUnavailable) as error:
            runtime.describe(FLOW_ID)
        assert time.monotonic() - started < 0.9, name
        messages[name] = str(error.value)

    assert messages == {"down": "Langflow could not be reached.", "slow": "Langflow could not be reached.",
                        "unconfigured": "Langflow is not configured.",
                        "bad key": "Langflow refused our credentials."}


def test_a_versions_tweaks_and_output_component_go_into_the_run_request(langflow):
    version = OfferingVersion(version="1.0.0", runtime_kind="langflow", runtime_ref="two-outputs",
                              output_component="ChatOutput-main",
                              tweaks_json='{"ChatInput-a1": {"should_store_message": false}}')

    output = LangflowRuntime(base_url=langflow.url, api_key=API_KEY).run(
        "two-outputs", "q", "s-1", RunContext(**offerings.run_options(version)))

    assert output.text == "main: q"
    body = langflow.requests[-1].body
    assert (body["tweaks"], body["output_component"]) == (
        {"ChatInput-a1": {"should_store_message": False}}, "ChatOutput-main")
    assert offerings.run_options(OfferingVersion(version="1.0.0", runtime_kind="builtin", runtime_ref="x")) == {
        "tweaks": None, "output_component": None}


def test_the_builtin_runtime_lists_and_describes_its_agents(app):
    with app.app_context():
        builtin = get_runtime("builtin")
        agents = builtin.list_references()

        assert ("support-faq", "Support FAQ answers") in [(a.ref, a.name) for a in agents]
        assert len(agents) == 10
        assert builtin.describe("support-faq").name == "Support FAQ answers"
        assert builtin.describe("invoice-reader") is None


# --- publishing a version checks its agent or flow --------------------------------------------------


def test_a_version_whose_flow_does_not_exist_cannot_be_published(session, operator, configured_langflow):
    before = version_count(session)

    with pytest.raises(OfferingError) as error:
        publish(session, operator, "1.2.0", kind="langflow", ref=MISSING_FLOW)

    assert (error.value.field, error.value.status) == ("runtime_ref", 400)
    assert error.value.message == (f"Langflow has no flow “{MISSING_FLOW}”. Choose one of its flows from the list.")
    session.rollback()
    assert version_count(session) == before


def test_a_flow_without_a_chat_output_or_a_missing_agent_is_refused(session, operator, configured_langflow):
    before = version_count(session)

    with pytest.raises(OfferingError) as no_output:
        publish(session, operator, "1.2.0", kind="langflow", ref=NO_OUTPUT_ID)
    session.rollback()
    with pytest.raises(OfferingError) as no_agent:
        publish(session, operator, "1.2.0", ref="invoice-reader")
    session.rollback()

    assert (no_output.value.field, no_output.value.message) == (
        "runtime_ref", "The flow “Ingest documents” has no Chat Output: buyers type into a Chat Input and read a "
                       "Chat Output, so add them in Langflow first.")
    assert (no_agent.value.field, no_agent.value.message) == (
        "runtime_ref", "There is no built-in agent “invoice-reader”. Choose one from the list.")
    assert version_count(session) == before


def test_an_unreachable_langflow_refuses_with_could_not_check(session, operator, app):
    app.config.update(LANGFLOW_URL=closed_port_url(), LANGFLOW_API_KEY=API_KEY)
    before = version_count(session)

    with pytest.raises(OfferingError) as error:
        publish(session, operator, "1.2.0", kind="langflow", ref=FLOW_ID)

    assert (error.value.field, error.value.status) == ("runtime_ref", 503)
    assert error.value.message == ("We could not check this flow: Langflow could not be reached. Nothing was "
                                   "published; try again in a moment.")
    session.rollback()
    assert version_count(session) == before


@pytest.mark.parametrize("tweaks, output_component, field, message", [
    ('{"ChatInput-a1": {"code": "import os"}}', None, "tweaks",
     "ChatInput-a1: “code” cannot be tweaked; Langflow keeps the flow's own value for it."),
    ({"ChatInput-a1": {"global_imports": "os"}}, None, "tweaks",
     "ChatInput-a1: “global_imports” cannot be tweaked; Langflow keeps the flow's own value for it."),
    ('{"ChatInput-a1": ', None, "tweaks", "The tweaks are not valid JSON (Expecting value at line 1, column 18)."),
    ('["ChatInput-a1"]', None, "tweaks", 'Write the tweaks as a JSON object: {"component id": {"field": value}}.'),
    ('{"ChatInput-a1": 3}', None, "tweaks",
     'Give the fields to set for ChatInput-a1 as an object: {"field": value}.'),
    ('{"Prompt-zz": {"template": "x"}}', None, "tweaks", "The flow “Two answers” has no component Prompt-zz."),
    ('{"ChatInput-a1": {"temperature": 0.2}}', None, "tweaks", "ChatInput-a1 has no field “temperature”."),
    (None, "ChatInput-a1", "output_component",
     "“ChatInput-a1” is not an output of “Two answers”; its outputs are ChatOutput-main, ChatOutput-other."),
])
def test_tweaks_and_output_component_are_validated_against_the_flow(
    session, operator, configured_langflow, tweaks, output_component, field, message,
):
    before = version_count(session)

    with pytest.raises(OfferingError) as error:
        publish(session, operator, "1.2.0", kind="langflow", ref=TWO_OUTPUTS_ID, tweaks=tweaks,
                output_component=output_component)

    assert (error.value.field, error.value.message) == (field, message)
    session.rollback()
    assert version_count(session) == before


def test_a_checked_version_keeps_its_output_component_and_tweaks(session, operator, configured_langflow):
    version = publish(session, operator, "1.2.0", kind="langflow", ref=TWO_OUTPUTS_ID,
                      output_component="ChatOutput-main",
                      tweaks='{"ChatInput-a1": {"should_store_message": false, "sender_name": "Buyer"}}')

    assert (version.output_component, version.tweaks) == (
        "ChatOutput-main", {"ChatInput-a1": {"should_store_message": False, "sender_name": "Buyer"}})
    audit = session.scalar(select(AuditEvent).where(AuditEvent.action == "offering.version_added")
                           .order_by(AuditEvent.id.desc()))
    assert '"tweaked_components": ["ChatInput-a1"]' in audit.data_json


def test_tweaks_on_a_builtin_agent_are_refused(session, operator):
    with pytest.raises(OfferingError) as error:
        publish(session, operator, "1.2.0", tweaks={"x": {"y": 1}})

    assert (error.value.field, error.value.message) == ("tweaks", "Tweaks apply to Langflow flows only.")


def test_submitting_checks_the_latest_version_again(session, seller, configured_langflow):
    offering = offerings.create_offering(
        session, publisher=offerings.publisher_organizations(session, user=seller)[0], actor=seller,
        name="Flow Bot", summary="Answers.", description_md="It answers.", category="agents", facets={})
    offerings.add_version(session, offering=offering, actor=seller, version="1.0.0", changelog="",
                          runtime_kind="langflow", runtime_ref=FLOW_ID)
    offerings.set_plan(session, offering=offering, actor=seller, tier="starter", name="Starter", price_minor=900,
                       currency="USD", included_credits=10, credits_per_run=1, max_runs_per_period=None)
    session.commit()
    deleted = fake_langflow.FLOWS.pop(FLOW_ID)  # deleted in Langflow after the version was added
    try:
        with pytest.raises(OfferingError) as error:
            offerings.submit_for_review(session, offering=offering, actor=seller)
    finally:
        fake_langflow.FLOWS[FLOW_ID] = deleted

    assert error.value.message == f"Version 1.0.0: Langflow has no flow “{FLOW_ID}”. Choose one of its flows from the list."
    session.rollback()
    assert session.get(Offering, offering.id).status == "draft"


# --- which version an instance runs ------------------------------------------------------------------


def test_a_patch_version_reaches_existing_instances_on_their_next_run(session, buyer, operator):
    instance = make_instance(session, buyer)
    assert (instance.version.version, ref_of_next_run(session, instance)) == ("1.1.0", "support-faq")

    publish(session, operator, "1.1.1", ref="summarize", changelog="Shorter answers.")

    assert ref_of_next_run(session, instance) == "summarize"
    state = offerings.version_state(session, session.get(Instance, instance.id))
    assert (state.running.version, state.pinned, state.upgrade) == ("1.1.1", False, None)


def test_a_pinned_instance_stays_on_its_version(session, buyer, operator):
    instance = make_instance(session, buyer)
    offerings.pin_version(session, instance=instance, actor=buyer)
    session.commit()

    publish(session, operator, "1.1.1", ref="summarize")

    assert ref_of_next_run(session, instance) == "support-faq"
    state = offerings.version_state(session, session.get(Instance, instance.id))
    assert (state.running.version, state.pinned, state.newer_in_line.version) == ("1.1.0", True, "1.1.1")

    offerings.follow_updates(session, instance=session.get(Instance, instance.id), actor=buyer)
    session.commit()
    assert ref_of_next_run(session, instance) == "summarize"


def test_a_pin_can_go_back_within_the_line_but_not_to_another_major(session, buyer, operator):
    instance = make_instance(session, buyer)
    publish(session, operator, "2.0.0", ref="triage")

    offerings.pin_version(session, instance=instance, actor=buyer, version="1.0.0")
    session.commit()
    assert (instance.version.version, ref_of_next_run(session, instance)) == ("1.0.0", "support-faq")
    with pytest.raises(OfferingError) as error:
        offerings.pin_version(session, instance=session.get(Instance, instance.id), actor=buyer, version="2.0.0")
    assert (error.value.status, error.value.message) == (409, "Pin a 1.x version; moving to 2.x is an upgrade.")


def test_a_new_major_is_offered_and_applied_only_on_upgrade(session, buyer, operator):
    instance = make_instance(session, buyer)

    publish(session, operator, "2.0.0", ref="triage", changelog="Routes tickets instead.")

    assert ref_of_next_run(session, instance) == "support-faq"
    state = offerings.version_state(session, session.get(Instance, instance.id))
    assert (state.running.version, state.upgrade.version, state.upgrade.changelog) == (
        "1.1.0", "2.0.0", "Routes tickets instead.")
    with pytest.raises(OfferingError) as stale:
        offerings.upgrade_instance(session, instance=session.get(Instance, instance.id), actor=buyer, version="1.9.0")
    assert (stale.value.status, stale.value.message) == (
        409, "The upgrade on offer is 2.0.0; review its notes and accept that one.")
    session.rollback()
    assert ref_of_next_run(session, instance) == "support-faq"

    offerings.upgrade_instance(session, instance=session.get(Instance, instance.id), actor=buyer, version="2.0.0")
    session.commit()

    assert ref_of_next_run(session, instance) == "triage"
    assert offerings.version_state(session, session.get(Instance, instance.id)).upgrade is None
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "instance",
                                                                   AuditEvent.target_id == str(instance.id))))
    assert actions[-1] == "instance.version_upgraded"


def test_a_fix_to_an_older_major_reaches_its_instances_while_new_buyers_get_the_newest(session, buyer, operator):
    instance = make_instance(session, buyer)
    publish(session, operator, "2.0.0", ref="triage")

    publish(session, operator, "1.1.1", ref="summarize")
    with pytest.raises(OfferingError) as error:
        publish(session, operator, "1.0.5", ref="summarize")

    assert error.value.message == "The new version must be greater than 1.1.1."
    session.rollback()
    assert ref_of_next_run(session, instance) == "summarize"
    newcomer = make_instance(session, buyer)
    assert (newcomer.version.version, ref_of_next_run(session, newcomer)) == ("2.0.0", "triage")


def test_a_member_who_is_not_an_owner_or_admin_cannot_pin_or_upgrade(session, buyer, operator):
    from app.models import Membership
    from app.services import organizations
    from tests.factories import make_user

    instance = make_instance(session, buyer)
    member = make_user(session, email="member@example.com")
    session.add(Membership(user_id=member.id, organization_id=instance.organization_id, role="member"))
    session.commit()
    publish(session, operator, "2.0.0", ref="triage")

    for change in (lambda: offerings.pin_version(session, instance=instance, actor=member),
                   lambda: offerings.upgrade_instance(session, instance=instance, actor=member, version="2.0.0")):
        with pytest.raises(organizations.NotAllowed):
            change()
        session.rollback()

    session.expire_all()
    reloaded = session.get(Instance, instance.id)
    assert (reloaded.version.version, reloaded.version_pinned) == ("1.1.0", False)


# --- existing data -----------------------------------------------------------------------------------


def test_the_migration_rewrites_versions_that_are_not_semver_keeping_their_order():
    path = next((ROOT / "migrations" / "versions").glob("*_c4a7e2d9f613_*.py"))
    spec = importlib.util.spec_from_file_location("versions_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    rows = [(1, 10, "1.0"), (2, 10, "v1.1"), (3, 10, "1.2.0"), (4, 10, "beta"), (5, 10, "1.2.0-rc1"),
            (6, 11, "2"), (7, 11, "2.0.0"), (8, 12, "latest"), (9, 12, "1.0.1")]

    assert migration.semver_rewrites(rows) == {
        1: "1.0.0", 2: "1.1.0", 4: "1.2.1", 5: "1.2.2", 6: "0.0.1", 8: "0.0.1"}


def test_the_migration_keeps_existing_instances_following_and_renumbers_their_versions(tmp_path):
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from app import create_app
    from app.extensions import db

    url = f"sqlite:///{tmp_path / 'before.db'}"
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret-key-123456", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(revision="5e1d0c7a9b42")  # the schema before versions could be pinned
        db.engine.dispose()
    engine = create_engine(url)  # no foreign keys enforced: only the rows the migration reads are made
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO offering_version (id, offering_id, version, changelog, runtime_kind, runtime_ref)"
                          " VALUES (1, 7, '1.0', '', 'builtin', 'triage'), (2, 7, '1.1.0', '', 'builtin', 'triage'),"
                          " (3, 7, 'v2', '', 'builtin', 'triage')"))
        conn.execute(text("INSERT INTO instance (id, organization_id, offering_id, plan_id, version_id, status, is_trial)"
                          " VALUES (5, 1, 7, 1, 1, 'active', 0)"))

    with app.app_context():
        upgrade(revision="c4a7e2d9f613")
        db.engine.dispose()

    with engine.connect() as conn:
        versions = conn.execute(text("SELECT id, version, tweaks_json, output_component FROM offering_version "
                                     "ORDER BY id")).all()
        instance = conn.execute(text("SELECT version_id, version_pinned FROM instance")).one()
    engine.dispose()
    assert [tuple(v) for v in versions] == [(1, "1.0.0", None, None), (2, "1.1.0", None, None), (3, "2.0.0", None, None)]
    assert tuple(instance) == (1, 0)  # follows its line: runs use 1.1.0 from now on
