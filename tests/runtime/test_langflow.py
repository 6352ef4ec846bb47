"""The Langflow adapter against a real HTTP server that answers in Langflow 1.13's shapes."""
import pytest

from app.adapters.runtime import RunContext, RuntimeFailure, RuntimeInputError, RuntimeTimeout, get_runtime
from app.adapters.runtime.langflow import LangflowRuntime
from tests.runtime import fake_langflow
from tests.runtime.fake_langflow import API_KEY, FLOW_ID


@pytest.fixture
def langflow():
    server, state = fake_langflow.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def runtime(state, timeout=5.0, api_key=API_KEY):
    return LangflowRuntime(base_url=state.url + "/", api_key=api_key, timeout=timeout)


def test_run_posts_the_documented_body_and_reads_the_output_text(langflow):
    output = runtime(langflow).run(FLOW_ID, "hello gateway", "inst7-abc", RunContext(tweaks={"ChatInput-1": {"x": 1}}))

    assert output.text == "hello gateway"
    assert output.usage_units == 0  # a flow without a model reports no usage
    assert output.details["component_id"] == "ChatOutput-yK0AU"
    [request] = langflow.requests
    assert request.path == f"/api/v1/run/{FLOW_ID}"
    assert request.query == {"stream": ["false"]}
    assert request.headers["x-api-key"] == API_KEY
    assert request.body == {"input_value": "hello gateway", "input_type": "chat", "output_type": "chat",
                            "tweaks": {"ChatInput-1": {"x": 1}}, "session_id": "inst7-abc"}


def test_run_always_sends_our_session_id_and_accepts_an_endpoint_name(langflow):
    runtime(langflow).run("echo", "one", "s-1", RunContext())
    runtime(langflow).run("echo", "two", "s-2", RunContext())

    assert [r.body["session_id"] for r in langflow.requests] == ["s-1", "s-2"]
    assert [r.path for r in langflow.requests] == ["/api/v1/run/echo", "/api/v1/run/echo"]
    with pytest.raises(ValueError):
        runtime(langflow).run("echo", "three", "", RunContext())
    assert len(langflow.requests) == 2


def test_token_usage_becomes_usage_units(langflow):
    output = runtime(langflow).run("usage", "q", "s", RunContext())

    assert output.text == "answer to q"
    assert output.usage_units == 1545
    assert output.details["token_usage"] == {"input_tokens": 1200, "output_tokens": 345, "total_tokens": 1545}


def test_output_component_picks_one_of_several_outputs(langflow):
    first = runtime(langflow).run("two-outputs", "q", "s", RunContext())
    chosen = runtime(langflow).run("two-outputs", "q", "s", RunContext(output_component="ChatOutput-main"))

    assert first.text == "from the other output"
    assert chosen.text == "main: q"
    assert langflow.requests[1].body["output_component"] == "ChatOutput-main"


def test_streaming_reads_blank_line_separated_json_and_passes_tokens(langflow):
    tokens = []
    output = runtime(langflow).run("usage", "q", "s", RunContext(), on_token=tokens.append)

    assert tokens == ["answer ", "to ", "q"]
    assert output.text == "answer to q"
    assert output.usage_units == 1545
    assert output.details["streamed"] is True
    assert langflow.requests[0].query == {"stream": ["true"]}


def test_a_finished_stream_leaves_its_connection_open_for_the_next_run():
    """The stream's last chunk is read after the end event, so the pooled connection is used again
    (a new TCP connection per run cost more than the gateway's own work)."""
    server, state = fake_langflow.start(keep_alive=True)
    try:
        adapter = runtime(state)
        for n in range(3):
            assert adapter.run("usage", f"q{n}", "s", RunContext(), on_token=lambda token: None).text == f"answer to q{n}"
        assert adapter.run("echo", "plain", "s", RunContext()).text == "plain"
        assert len({r.client_port for r in state.requests}) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_streaming_without_tokens_still_returns_the_end_result(langflow):
    tokens = []
    output = runtime(langflow).run("echo", "plain flow", "s", RunContext(), on_token=tokens.append)

    assert output.text == "plain flow"
    assert tokens == []


def test_an_error_inside_a_200_stream_is_a_run_failure(langflow):
    with pytest.raises(RuntimeFailure) as caught:
        runtime(langflow).run("crash-stream", "q", "s", RunContext(), on_token=lambda t: None)

    assert not isinstance(caught.value, RuntimeTimeout)
    assert str(caught.value) == "The agent reported an error while running. It has been logged."
    assert "Error building Component OpenAI: invalid key" in caught.value.detail


def test_a_stream_that_ends_without_an_end_event_fails(langflow):
    with pytest.raises(RuntimeFailure) as caught:
        runtime(langflow).run("cut-stream", "q", "s", RunContext(), on_token=lambda t: None)

    assert "ended without an end event" in caught.value.detail


def test_a_stream_that_runs_past_the_deadline_times_out(langflow):
    received = []
    with pytest.raises(RuntimeTimeout):
        runtime(langflow, timeout=0.5).run("trickle", "q", "s", RunContext(), on_token=received.append)

    assert 0 < len(received) < 40


def test_a_slow_flow_times_out(langflow):
    with pytest.raises(RuntimeTimeout) as caught:
        runtime(langflow, timeout=0.3).run("slow", "q", "s", RunContext())

    assert str(caught.value) == "The agent did not answer within 0.3 seconds. You were not charged."


@pytest.mark.parametrize("flow, error, message, detail", [
    ("crash", RuntimeFailure, "The agent failed while running.", "HTTP 500"),
    ("bad-input", RuntimeInputError, "The agent could not accept this input.", "HTTP 400"),
    ("tweaks-refused", RuntimeFailure, "The agent runtime refused the request.", "TWEAKS_REFUSED"),
    ("no-such-flow", RuntimeFailure, "This agent's flow was not found on the runtime.", "Flow identifier no-such-flow not found"),
    ("not-json", RuntimeFailure, "The agent runtime sent an answer we could not read.", "proxy error"),
    ("empty", RuntimeFailure, "The agent finished without an output.", "no outputs[0].outputs"),
])
def test_errors_map_to_run_failures(langflow, flow, error, message, detail):
    with pytest.raises(error) as caught:
        runtime(langflow).run(flow, "q", "s", RunContext())

    assert type(caught.value) is error
    assert str(caught.value).startswith(message)
    assert detail in caught.value.detail


def test_a_wrong_key_is_refused_and_never_shown_to_the_user(langflow):
    with pytest.raises(RuntimeFailure) as caught:
        runtime(langflow, api_key="sk-wrong").run("echo", "q", "s", RunContext())

    assert str(caught.value) == "The agent runtime refused our credentials. It has been logged."
    assert "sk-wrong" not in str(caught.value)
    assert "HTTP 403" in caught.value.detail


def test_an_unreachable_runtime_fails_fast(langflow):
    server_url = langflow.url
    closed = LangflowRuntime(base_url="http://127.0.0.1:9", api_key=API_KEY, timeout=2)

    with pytest.raises(RuntimeFailure) as caught:
        closed.run("echo", "q", "s", RunContext())

    assert str(caught.value) == "The agent runtime cannot be reached right now. Try again in a moment."
    assert server_url  # the fake server was not involved
    assert langflow.requests == []


def test_missing_configuration_fails_without_a_request(langflow):
    with pytest.raises(RuntimeFailure) as caught:
        runtime(langflow, api_key="").run("echo", "q", "s", RunContext())

    assert "LANGFLOW_API_KEY" in caught.value.detail
    assert langflow.requests == []


def test_get_runtime_builds_the_adapter_from_config(langflow):
    adapter = get_runtime("langflow", {"LANGFLOW_URL": langflow.url, "LANGFLOW_API_KEY": API_KEY, "LANGFLOW_TIMEOUT": 7})

    assert isinstance(adapter, LangflowRuntime)
    assert adapter.timeout == 7.0
    assert adapter.run("echo", "via port", "s", RunContext()).text == "via port"
    with pytest.raises(RuntimeFailure):
        get_runtime("nonsense", {})
