"""The layout shows the architecture: imports run one way, ``registry`` at the bottom,
``ontologies`` and ``curation`` side by side over it, ``demo`` on top.

The test reads every module's imports with ``ast`` (also the ones inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency) and fails on any import against these
directions, naming the file, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: package -> the project packages it may import (itself always)
ALLOWED = {
    "registry": set(),
    "ontologies": {"registry"},
    "curation": {"registry"},
    "demo": {"registry", "ontologies", "curation"},
}


def imported_packages(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in a module, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..y import z
                base = package_parts[: len(package_parts) - node.level + 1]
                found.append((node.lineno, (base or (node.module or "").split("."))[0]))
            elif node.module:
                found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(root: Path = REPO) -> list[str]:
    """Imports that run against the allowed directions, as ``file:line imports package``."""
    found = []
    for package, allowed in ALLOWED.items():
        forbidden = set(ALLOWED) - allowed - {package}
        for path in sorted((root / package).rglob("*.py")):
            for line, imported in imported_packages(path, root):
                if imported in forbidden:
                    where = path.relative_to(root)
                    found.append(f"{where}:{line} imports {imported} ({package} may not)")
    return found


def test_imports_run_one_way() -> None:
    assert violations() == []


def test_the_check_finds_an_upward_import(tmp_path: Path) -> None:
    """The checker is not vacuous: a registry module importing curation is caught, also when
    the import is inside a function, and so is a sibling import between curation and
    ontologies."""
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "registry" / "bad.py").write_text(
        "def f():\n    from curation.steps import curate_release\n"
    )
    (tmp_path / "curation" / "sibling.py").write_text("import ontologies.models\n")
    (tmp_path / "ontologies" / "fine.py").write_text("from registry.models import Artifact\n")
    assert violations(tmp_path) == [
        "registry/bad.py:2 imports curation (registry may not)",
        "curation/sibling.py:1 imports ontologies (curation may not)",
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_package_is_checked(package: str) -> None:
    assert any((REPO / package).rglob("*.py")), f"no modules found under {package}/"
