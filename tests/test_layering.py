"""The layering the architecture describes, checked on the source: models and adapters are the inner
layers, so they never import the rules (services) or the HTTP layer (blueprints)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
BLUEPRINTS = ("app.storefront", "app.account", "app.seller", "app.operator", "app.auth", "app.cp")
FORBIDDEN = {
    "models": ("app.services", "app.adapters", "app.web", "app.cli") + BLUEPRINTS,
    "adapters": ("app.services", "app.web", "app.cli") + BLUEPRINTS,
}


def _imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every absolute module name a file imports, with its line (relative imports resolved against the package)."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from app import services` imports a forbidden package by its name
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _violations(layer: str, root: Path = APP) -> list[str]:
    bad = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, module in _imported_modules(path, root):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_inner_layers_never_import_outer_ones(layer):
    assert _violations(layer) == []


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The check itself can fail: a file that imports a service from an adapter is reported."""
    fake_app = tmp_path / "app"
    (fake_app / "adapters" / "thing").mkdir(parents=True)
    (fake_app / "adapters" / "thing" / "__init__.py").write_text("")
    (fake_app / "adapters" / "thing" / "bad.py").write_text(
        "from app.services import billing\nfrom ...services.orders import x\nimport app.cp.views\n"
    )
    assert _violations("adapters", fake_app) == [
        "app/adapters/thing/bad.py:1 imports app.services",
        "app/adapters/thing/bad.py:1 imports app.services.billing",
        "app/adapters/thing/bad.py:2 imports app.services.orders",
        "app/adapters/thing/bad.py:2 imports app.services.orders.x",
        "app/adapters/thing/bad.py:3 imports app.cp.views",
    ]
