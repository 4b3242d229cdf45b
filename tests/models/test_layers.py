"""The models packages import only downwards: warehouse < normalise < mappings < identity < push.

A newcomer reads the layers from ``models/__init__.py``; this test keeps that description true by
reading every module's imports (static, so it also sees imports inside functions).
"""

import ast
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
ORDER = ("warehouse", "normalise", "mappings", "identity", "push")


def _imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in names if name.startswith("models.") and name.count(".") >= 1}


@pytest.mark.parametrize("package", ORDER)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = set(ORDER[: ORDER.index(package) + 1])
    offenders = {
        str(path.relative_to(MODELS)): sorted(_imported_packages(path) - allowed)
        for path in sorted((MODELS / package).rglob("*.py"))
        if _imported_packages(path) - allowed
    }
    assert offenders == {}


def test_every_module_lives_in_a_layer() -> None:
    loose = sorted(path.name for path in MODELS.glob("*.py") if path.name != "__init__.py")
    assert loose == []


def test_no_layer_reaches_outside_models() -> None:
    outside = {
        str(path.relative_to(MODELS))
        for path in MODELS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for name in (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
        if name.split(".")[0] in {"connectors", "pipelines", "httpx", "dagster"}
    }
    assert outside == set()
