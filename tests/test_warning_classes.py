"""Every ``warnings.warn`` in pinnlog names a PinnlogWarning class of analyzer/errors.py (issue 12).

Read from the source, so a warning added later with a bare ``RuntimeWarning`` (or no category, which
is a ``UserWarning``) fails here before a user meets it. tests/recorder/test_recorder_warnings.py
provokes the recorder's warnings and checks the classes they arrive with.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pinnlog.analyzer import errors

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for package in ("analyzer", "recorder") for p in (ROOT / package).rglob("*.py"))


def _warn_calls(path: Path) -> list[tuple[int, ast.expr | None]]:
    """(line, category expression or None when the call gives none) of each ``warnings.warn(...)``."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "warn" and isinstance(func.value, ast.Name)):
            continue
        if func.value.id != "warnings":
            continue
        category = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "category"), None)
        calls.append((node.lineno, category))
    return calls


def test_the_sources_are_found():
    assert len(SOURCES) > 40
    assert any(_warn_calls(p) for p in SOURCES if "recorder" in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_warning_names_a_pinnlog_warning_class(path):
    for line, category in _warn_calls(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        assert isinstance(category, ast.Name), f"{where}: warnings.warn without a named category"
        cls = getattr(errors, category.id, None)
        assert isinstance(cls, type), f"{where}: {category.id} is not a class of pinnlog.analyzer.errors"
        assert issubclass(cls, errors.PinnlogWarning), f"{where}: {category.id} is not a PinnlogWarning"
        assert category.id in errors.__all__, f"{where}: {category.id} is not exported by pinnlog.analyzer.errors"


def test_every_warning_class_is_a_runtime_warning_and_exported():
    kinds = [getattr(errors, name) for name in errors.__all__]
    warning_classes = [k for k in kinds if isinstance(k, type) and issubclass(k, Warning)]
    assert errors.PinnlogWarning in warning_classes and errors.RecorderWarning in warning_classes
    for kind in warning_classes:
        assert issubclass(kind, errors.PinnlogWarning) and issubclass(kind, RuntimeWarning), kind.__name__
