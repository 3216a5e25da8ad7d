"""Stores and reports shared by the report tests (built once per session: drawing takes seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Arguments of the store that holds every group a report draws (``make_store`` in tests/conftest.py).
FULL = dict(n_steps=40, layers=(2, 8, 8, 1), seed=3, raw=8, activations=True, residuals=True)


@pytest.fixture(scope="session")
def full_store(tmp_path_factory, make_store) -> Path:
    return make_store(tmp_path_factory.mktemp("full"), **FULL)


@pytest.fixture(scope="session")
def full_truth(synthetic_run):
    """The numpy truth behind ``full_store``."""
    return synthetic_run(**FULL)


@pytest.fixture(scope="session")
def sparse_store(tmp_path_factory, make_store) -> Path:
    """Gradient statistics and scalars only, SGD (no Adam moments): several figures must be skipped."""
    return make_store(tmp_path_factory.mktemp("sparse"), n_steps=30, layers=(2, 6, 1), seed=4, adam=False, name="sparse.zarr")


@pytest.fixture(scope="session")
def full_report(full_store, tmp_path_factory):
    from pinnlog.analyzer.report import analyze_run

    return analyze_run(full_store, tmp_path_factory.mktemp("full_report") / "out", smooth=5)


@pytest.fixture(scope="session")
def compare_report(full_store, sparse_store, tmp_path_factory):
    from pinnlog.analyzer.report import compare_runs

    return compare_runs([full_store, sparse_store], ["full", "sparse"], tmp_path_factory.mktemp("cmp") / "out", smooth=3)


@pytest.fixture(scope="session")
def schema() -> dict:
    return json.loads((ROOT / "analyzer" / "report" / "summary.schema.json").read_text())
