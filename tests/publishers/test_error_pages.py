"""No route ever answers with the framework's stock error text: every 4xx is our own page (HTML) or
problem+json (API and JSON requests). Walks every registered rule with a wrong method, and every GET
rule as a signed-out visitor and as a plain buyer."""
import re

import pytest
from werkzeug.exceptions import default_exceptions

from tests.conftest import login

STOCK = sorted({cls.description for cls in default_exceptions.values() if cls.description})
STOCK_MARKERS = ["<title>4", "The requested URL was not found on the server", "permission to access the requested"]
ARG_VALUES = {"int": "2147483000", "default": "no-such-thing", "path": "no/such/thing"}
SKIP_ENDPOINTS = {"static"}


def _url(rule) -> str:
    url = rule.rule
    for converter, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
        value = ARG_VALUES.get(converter or "default", ARG_VALUES["default"])
        url = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?" + name + ">", value, url, count=1)
    return url


def _wrong_method(rule) -> str:
    for method in ("PATCH", "PUT", "DELETE", "POST", "GET"):
        if method not in rule.methods:
            return method
    return "TRACE"


def _assert_ours(response, where: str) -> None:
    status = response.status_code
    assert status < 500 or status == 503, f"{where}: {status}"
    if status < 400:
        return
    body = response.get_data(as_text=True)
    for text in STOCK:
        assert text not in body, f"{where}: stock text {text!r}"
    for marker in STOCK_MARKERS:
        assert marker not in body, f"{where}: stock marker {marker!r}"
    if response.mimetype == "application/problem+json":
        problem = response.get_json()
        assert problem["status"] == status and problem["title"] and problem.get("detail"), where
    else:
        assert response.mimetype == "text/html", f"{where}: {response.mimetype}"
        # our layout (an error page, or a page of its own such as "this link has expired") with a way on
        assert 'class="site-header"' in body and 'href="/"' in body, f"{where}: not our page"


def _rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint not in SKIP_ENDPOINTS]


def test_every_rule_with_a_wrong_method_answers_with_our_page_or_problem(app, client, demo):
    rules = _rules(app)
    assert len(rules) > 100
    seen_405 = 0
    for rule in rules:
        method, url = _wrong_method(rule), _url(rule)
        response = client.open(url, method=method)
        _assert_ours(response, f"{method} {url}")
        seen_405 += response.status_code == 405
        json_response = client.open(url, method=method, headers={"Accept": "application/json"})
        _assert_ours(json_response, f"{method} {url} (JSON)")
        if json_response.status_code >= 400:
            assert json_response.mimetype == "application/problem+json", f"{method} {url} (JSON)"
    assert seen_405 > 50


@pytest.mark.parametrize("who", ["visitor", "buyer"])
def test_every_get_rule_for_a_visitor_or_buyer_answers_with_our_page_or_problem(app, client, demo, buyer, who):
    if who == "buyer":
        login(client, buyer)
    statuses = set()
    for rule in _rules(app):
        if "GET" not in rule.methods or rule.endpoint in {"auth.logout"}:
            continue
        url = _url(rule)
        response = client.get(url)
        statuses.add(response.status_code)
        _assert_ours(response, f"GET {url} as {who}")
    assert {404}.issubset(statuses)
    if who == "buyer":
        assert 403 in statuses


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429])
def test_each_4xx_has_our_words_in_html_and_json(app, code):
    from flask import abort

    app.add_url_rule(f"/__raise/{code}", f"raise_{code}", lambda: abort(code))
    client = app.test_client()
    page = client.get(f"/__raise/{code}")
    assert page.status_code == code
    _assert_ours(page, f"HTML {code}")
    problem = client.get(f"/__raise/{code}", headers={"Accept": "application/json"})
    assert problem.status_code == code and problem.mimetype == "application/problem+json"
    _assert_ours(problem, f"JSON {code}")
    sent_json = client.post(f"/__raise/{code}", json={"a": 1})  # a JSON body: a JSON answer (here 405)
    assert sent_json.mimetype == "application/problem+json"


def test_a_message_given_to_abort_is_kept_and_escaped(app):
    from flask import abort

    app.add_url_rule("/__raise/custom", "raise_custom", lambda: abort(409, "<b>Someone</b> else saved it first."))
    body = app.test_client().get("/__raise/custom").get_data(as_text=True)
    assert "&lt;b&gt;Someone&lt;/b&gt; else saved it first." in body


def test_the_seller_console_refuses_a_buyer_with_a_way_to_become_a_seller(client, buyer):
    login(client, buyer)
    response = client.get("/seller/")
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    assert 'href="/sell"' in body and "Apply to sell on Digitlify" in body
