"""The import rules of docs/architecture.md, read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", sources("analyzer"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_analyzer_never_imports_the_recorder_or_torch(path):
    bad = {m for m in imports(path) if m.startswith(("pinnlog.recorder", "torch"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("analyzer/store"), ids=lambda p: p.name)
def test_the_store_package_imports_only_errors_and_itself(path):
    allowed = ("pinnlog.analyzer.errors", "pinnlog.analyzer.store")
    ours = {m for m in imports(path) if m.startswith("pinnlog.")}
    if path.name == "verify.py":  # the raw-against-reduced check of a store uses the metric itself
        ours -= {"pinnlog.analyzer.metrics", "pinnlog.analyzer.metrics.check_consistency"}
    bad = {m for m in ours if not m.startswith(allowed)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
    if path.name == "verify.py":
        assert not {m for m in ours if m.startswith("pinnlog.analyzer.store.repair")}, "verify must not import repair"


@pytest.mark.parametrize("path", sources("recorder"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_recorder_imports_only_the_store_and_the_errors_of_the_analyzer(path):
    allowed = ("pinnlog.analyzer.errors", "pinnlog.analyzer.store")
    bad = {m for m in imports(path) if m.startswith("pinnlog.analyzer") and not m.startswith(allowed)}
    bad -= {"pinnlog.analyzer", "pinnlog.analyzer.__version__"}  # the package version, stored in the run's attributes
    assert not bad, f"{path.name} imports {sorted(bad)}"
