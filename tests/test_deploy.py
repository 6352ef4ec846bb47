"""What cannot be run here (no container registry, no cluster) is checked on the files: the Kubernetes
manifests against the Kubernetes schemas, the compose file's and the manifests' settings against
.env.example, the probes and the health check against real routes, and the image's roles against real
commands."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"
# variables the compose file reads for itself (interpolation), not settings of the app
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "KEYCLOAK_ADMIN_PASSWORD", "LANGFLOW_ADMIN_PASSWORD", "SALEOR_DB_PASSWORD",
                "SALEOR_SECRET_KEY", "SALEOR_RSA_PRIVATE_KEY"}


def _env_example_names() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def _manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _containers() -> list[tuple[str, dict]]:
    found = []
    for name, doc in _manifests():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        found += [(f"{name}:{c['name']}", c) for c in spec.get("containers", [])]
    return found


@pytest.mark.parametrize("name,doc", _manifests(), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_every_manifest_is_valid_kubernetes(name, doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_the_manifests_hold_no_secret_values():
    kinds = {doc["kind"] for _, doc in _manifests()}
    assert "Secret" not in kinds
    config = next(doc for _, doc in _manifests() if doc["kind"] == "ConfigMap")
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "GATEWAY_SERVICE_TOKEN"} & set(config["data"])
    for _, container in _containers():
        refs = [next(iter(ref)) for ref in container["envFrom"]]
        assert refs == ["configMapRef", "secretRef"]


def test_config_names_are_settings_the_app_documents():
    documented = _env_example_names()
    config = next(doc for _, doc in _manifests() if doc["kind"] == "ConfigMap")
    assert set(config["data"]) - documented == set()


def test_compose_services_set_only_documented_settings():
    compose = yaml.safe_load(COMPOSE.read_text())
    documented = _env_example_names()
    app_services = {name: s for name, s in compose["services"].items() if s.get("image") == "digitlify-marketplace:local"}
    assert set(app_services) == {"migrate", "web", "worker"}
    for name, service in app_services.items():
        assert set(service["environment"]) - documented == set(), name
        interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", yaml.safe_dump(service["environment"])))
        assert interpolated - documented - COMPOSE_ONLY == set(), name
    assert {s["command"][0] for s in app_services.values()} == {"migrate", "web", "worker"}
    web_ports = compose["services"]["web"]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in web_ports)


def test_probes_and_the_image_health_check_point_at_routes_that_answer(client):
    paths = set()
    for _, container in _containers():
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                paths.add(container[probe]["httpGet"]["path"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    paths |= set(re.findall(r"http://127\.0\.0\.1:8000(/[\w/]+)", dockerfile))
    assert paths == {"/api/health/ready", "/api/health/live"}
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_every_role_the_deployment_starts_is_a_command_of_the_image(app):
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    roles = set(re.findall(r"^\s+(\w+)\)", entrypoint, re.M))
    assert roles == {"web", "worker", "migrate", "flask"}
    used = {c["args"][0] for _, c in _containers()}
    assert used == {"web", "worker", "migrate"}
    runner = app.test_cli_runner()
    for command in (["worker", "--help"], ["db", "upgrade", "--help"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, (command, result.output)


def test_the_entrypoint_refuses_an_unknown_role():
    result = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), "nonsense"], capture_output=True, text=True)
    assert result.returncode == 64
    assert "usage:" in result.stderr


def test_the_image_runs_as_a_user_without_compilers():
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    assert len(stages) == 3
    runtime = stages[-1]
    assert re.search(r"^USER app$", runtime, re.M)
    assert "build-essential" not in runtime and "gcc" not in runtime
    assert "HEALTHCHECK" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "node_modules", ".env", "instance"} <= set(ignored)


def test_gunicorn_settings_come_from_the_environment(monkeypatch, tmp_path):
    import runpy

    # the file sets PROMETHEUS_MULTIPROC_DIR when it is missing: keep that out of this test process
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "6")
    monkeypatch.delenv("TRUST_PROXY", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["threads"], settings["forwarded_allow_ips"]) == (3, 6, "")
    monkeypatch.setenv("TRUST_PROXY", "true")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["forwarded_allow_ips"] == "*"
    documented = _env_example_names()
    read = set(re.findall(r'(?:os\.environ\.get|_flag)\("([A-Z_]+)"', (ROOT / "gunicorn.conf.py").read_text()))
    assert read - documented == set()


def test_a_metrics_directory_gunicorn_made_itself_is_removed_when_it_exits(monkeypatch, tmp_path):
    import runpy
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after the test: the file sets it
    made = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.parent == tmp_path and directory.is_dir()
    made["on_exit"](None)
    assert not directory.exists()

    given = tmp_path / "given"
    given.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    runpy.run_path(str(ROOT / "gunicorn.conf.py"))["on_exit"](None)
    assert given.is_dir()  # the operator's directory stays


def test_compose_profiles_add_the_outside_systems_without_touching_the_default_set():
    compose = yaml.safe_load(COMPOSE.read_text())
    by_profile: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for profile in service.get("profiles", ["default"]):
            by_profile.setdefault(profile, set()).add(name)
    assert by_profile == {
        "default": {"postgres", "redis", "migrate", "web", "worker"},
        "sso": {"keycloak"}, "langflow": {"langflow"}, "vault": {"vault"},
        "saleor": {"saleor-db", "saleor-api", "saleor-worker"},
    }
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert interpolated - _env_example_names() - COMPOSE_ONLY == set()
    realm = (ROOT / "deploy" / "keycloak" / "digitlify-realm.json").read_text()
    import json
    realm = json.loads(realm)
    groups = {g["name"] for g in realm["groups"]}
    from app.config import Defaults
    mapped = {pair.split("=")[0] for pair in Defaults.OIDC_GROUP_ROLES.split(",")}
    assert mapped <= groups  # every group the app maps to a role exists in the realm
    (client,) = realm["clients"]
    assert client["clientId"] == Defaults.KEYCLOAK_CLIENT_ID and not client["publicClient"]
    assert all(uri.endswith("/auth/oidc/callback") for uri in client["redirectUris"])
