"""Adapters implement ports on plain data: no module under app/adapters/ imports a service or a
blueprint (at the top or inside a function)."""
import ast
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[1] / "app" / "adapters"
FORBIDDEN = ("app.services", "app.storefront", "app.account", "app.seller", "app.operator", "app.auth", "app.cp")


def _imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
            if node.module == "app":  # from app import services
                modules += [f"app.{alias.name}" for alias in node.names]
    return modules


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_no_adapter_imports_a_service_or_a_blueprint():
    found = {
        str(path.relative_to(ADAPTERS)): _forbidden(_imported_modules(path))
        for path in sorted(ADAPTERS.rglob("*.py"))
    }

    assert len(found) > 20
    assert {name: modules for name, modules in found.items() if modules} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text("def f():\n    from app.services.offerings import render_description\n"
                      "from app import services, models\nimport app.cp.views\n")

    assert sorted(_forbidden(_imported_modules(module))) == ["app.cp.views", "app.services", "app.services.offerings"]
