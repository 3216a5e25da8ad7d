"""Fixtures of the reliability tests: the hostile corpus (built once per session) and the real CLI entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not installed: the campaigns are imported from the checkout
    sys.path.insert(0, str(ROOT))
from hostile_corpus import build_corpus


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """``(cases, marker)``: every hostile case on disk, and the file a code-execution payload would create."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "MARKER_code_ran"
    return build_corpus(root / "corpus", marker), marker


@pytest.fixture(scope="session")
def analyzed(hostile, tmp_path_factory, cli):
    """``analyzed(name) -> (result, out_dir)``: ``pinnlog analyze`` of one hostile case, run once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"report_{name}") / "report"
            cache[name] = cli("analyze", hostile[0][name].path, "-o", out, "-q"), out
        return cache[name]

    return get
