"""The probes an orchestrator uses: liveness never touches the database, readiness needs the database
at the migrations' head."""
from flask_migrate import downgrade, upgrade



def test_live_answers_without_the_database(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    response = app.test_client().get("/api/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_the_schema_is_at_head(client):
    response = client.get("/api/health/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["migrations"] == "current"
    assert body["current"] == body["expected"] and len(body["expected"]) == 1


def test_ready_is_503_while_migrations_are_behind_and_200_after(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'behind.db'}"  # a database of its own: the shared one stays at head
    app = make_app(SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        downgrade(revision="-1")
    behind = app.test_client().get("/api/health/ready")
    assert behind.status_code == 503
    assert behind.get_json()["migrations"] == "behind"
    with app.app_context():
        upgrade()
    after = app.test_client().get("/api/health/ready")
    assert after.status_code == 200
    assert after.get_json()["migrations"] == "current"


def test_ready_is_503_when_the_database_does_not_answer(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    response = app.test_client().get("/api/health/ready")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"
