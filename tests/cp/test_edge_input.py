"""Numbers at the edge: a header or a path id that no row can have is a 4xx problem, never a 500 or a 405."""
import pytest

from tests.conftest import login
from tests.factories import make_user


@pytest.mark.parametrize("value", ["2147483648", "999999999999", "0"])
def test_an_organization_header_past_any_id_is_404(client, session, auth_for, value):
    headers = auth_for(make_user(session), **{"X-Organization-Id": value})

    response = client.get("/api/wallets/me", headers=headers)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "Organization not found."


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", "-1", "12 3", "1234567890123", "", "  "])
def test_an_organization_header_that_is_not_an_ascii_number_is_422_naming_the_header(client, session, auth_for,
                                                                                     value):
    headers = auth_for(make_user(session))
    headers["X-Organization-Id"] = value

    response = client.get("/api/organizations/", headers=headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [
        {"field": "X-Organization-Id", "message": "Send an organization id (a whole number)."}]


def test_a_superscript_digit_sent_as_one_latin_1_byte_is_422(app, session, auth_for):
    # "²" is U+00B2: one latin-1 byte on the wire, which str.isdigit() accepts and int() refuses
    headers = auth_for(make_user(session))
    environ = {"HTTP_X_ORGANIZATION_ID": "\u00b2", "HTTP_AUTHORIZATION": headers["Authorization"]}

    response = app.test_client().get("/api/wallets/me", environ_base=environ)

    assert response.status_code == 422


@pytest.mark.parametrize("method, path", [
    ("post", "/api/instances/2147483648/keys/"),
    ("post", "/api/organizations/2147483648/members/"),
    ("patch", "/api/offerings/2147483648"),
    ("get", "/api/instances/99999999999"),
    ("post", "/api/instances/2147483648/runs"),
    ("post", "/api/instances/0/keys/"),
    ("get", "/api/instances/007"),
])
def test_a_path_id_out_of_range_is_a_404_problem_not_405(client, session, auth_for, method, path):
    headers = auth_for(make_user(session))

    response = getattr(client, method)(path, headers=headers, json={})

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "Allow" not in response.headers


@pytest.mark.parametrize("path", [
    "/account/orders/2147483648", "/account/instances/99999999999", "/checkout/orders/2147483648/pay",
])
def test_a_page_id_out_of_range_is_the_404_page(client, session, path):
    user = make_user(session)
    session.commit()
    login(client, user)

    response = client.get(path)

    assert response.status_code == 404
    assert "We couldn" in response.get_data(as_text=True)


def test_the_largest_id_still_routes(client, session, auth_for):
    headers = auth_for(make_user(session))

    response = client.get("/api/instances/2147483647", headers=headers)

    assert response.status_code == 404
    assert response.get_json()["detail"] != (
        "The requested URL was not found on the server. If you entered the URL manually please check your "
        "spelling and try again.")
