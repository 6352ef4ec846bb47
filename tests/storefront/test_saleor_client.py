"""The shared Saleor client against the fake Saleor (Saleor's API as our schema describes it, real HTTP)."""
import pytest

from app.adapters.commerce.saleor.client import SaleorError, SaleorUnavailable, execute


def _products(info, **args):
    return {
        "totalCount": 1,
        "pageInfo": {"hasNextPage": False, "endCursor": "YXJyYXljb25uZWN0aW9uOjA="},
        "edges": [{"node": {"id": "UHJvZHVjdDox", "name": "Inbox Triage", "slug": "inbox-triage",
                            "seoDescription": "Sorts mail", "created": "2026-01-02T03:04:05+00:00",
                            "category": None, "assignedAttributes": [], "pricing": None}}],
    }


def test_execute_sends_one_named_operation_with_variables_and_app_token(make_app, saleor_fake):
    # given
    saleor_fake.resolvers["products"] = _products
    app = make_app(SALEOR_API_URL=saleor_fake.url, SALEOR_APP_TOKEN="app-token-1", SALEOR_CHANNEL="web")

    # when
    with app.app_context():
        data = execute("ProductList", {"channel": "web", "search": "inbox", "first": 5})

    # then
    assert data["products"]["edges"][0]["node"]["slug"] == "inbox-triage"
    [received] = saleor_fake.operations
    assert received.name == "ProductList"
    assert received.variables == {"channel": "web", "search": "inbox", "first": 5}
    assert received.headers["Authorization"] == "Bearer app-token-1"


def test_execute_without_app_token_sends_no_authorization_header(make_app, saleor_fake):
    saleor_fake.resolvers["products"] = _products
    app = make_app(SALEOR_API_URL=saleor_fake.url, SALEOR_APP_TOKEN="")

    with app.app_context():
        execute("ProductList", {"channel": "default-channel"})

    assert "Authorization" not in saleor_fake.operations[0].headers


def test_a_slow_saleor_raises_unavailable_instead_of_waiting(make_app, saleor_fake):
    # given: Saleor answers after 20 s (a success, if anyone waited), the client waits 0.3 s
    saleor_fake.resolvers["products"] = _products
    saleor_fake.fail_with_delay(20.0)
    app = make_app(SALEOR_API_URL=saleor_fake.url, SALEOR_TIMEOUT=0.3)

    # when / then
    with app.app_context(), pytest.raises(SaleorUnavailable):
        execute("ProductList", {"channel": "default-channel"})


def test_an_http_500_raises_unavailable(make_app, saleor_fake):
    saleor_fake.fail_with_status(500)
    app = make_app(SALEOR_API_URL=saleor_fake.url)

    with app.app_context(), pytest.raises(SaleorUnavailable):
        execute("ProductList", {"channel": "default-channel"})


def test_a_refused_connection_raises_unavailable(make_app, saleor_fake):
    url = saleor_fake.url
    saleor_fake.stop()
    app = make_app(SALEOR_API_URL=url)

    with app.app_context(), pytest.raises(SaleorUnavailable):
        execute("ProductList", {"channel": "default-channel"})


def test_graphql_errors_raise_saleor_error_with_the_errors(make_app, saleor_fake):
    saleor_fake.fail_with_graphql_errors("Channel with slug web not found.", code="NOT_FOUND")
    app = make_app(SALEOR_API_URL=saleor_fake.url)

    with app.app_context(), pytest.raises(SaleorError) as raised:
        execute("ProductList", {"channel": "web"})

    assert not isinstance(raised.value, SaleorUnavailable)
    assert [e["message"] for e in raised.value.errors] == ["Channel with slug web not found."]


def test_missing_required_variable_is_refused_like_saleor_does(make_app, saleor_fake):
    app = make_app(SALEOR_API_URL=saleor_fake.url)

    with app.app_context(), pytest.raises(SaleorError) as raised:
        execute("ProductList", {})

    assert type(raised.value) is SaleorError, raised.value
    assert "$channel" in raised.value.errors[0]["message"]


def test_timeout_is_capped_at_three_seconds(make_app):
    from app.adapters.commerce.saleor.client import timeout_seconds

    app = make_app(SALEOR_TIMEOUT=30.0)

    with app.app_context():
        assert timeout_seconds() == 3.0


def test_fake_refuses_a_document_with_two_operations(saleor_fake):
    import requests

    query = "query A { shop { name } } query B { shop { name } }"

    response = requests.post(saleor_fake.url, json={"query": query, "operationName": "A"}, timeout=3)

    assert response.status_code == 400
    assert saleor_fake.operation_names() == ["A"]
