"""Fixtures of the reliability tests: the hostile corpus (built once per session) and the real CLI entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not installed: the campaigns are imported from the checkout
    sys.path.insert(0, str(ROOT))
from hostile_corpus import build_corpus

from pinnlog.analyzer.cli import main


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    """``(cases, marker)``: every hostile case on disk, and the file a code-execution payload would create."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "MARKER_code_ran"
    return build_corpus(root / "corpus", marker), marker


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    main(list(args))


@pytest.fixture
def cli():
    """``cli("verify", path) -> click.testing.Result``: ``main()`` as the console script runs it (exit codes included)."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(_entry, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="session")
def analyzed(hostile, tmp_path_factory):
    """``analyzed(name) -> (result, out_dir)``: ``pinnlog analyze`` of one hostile case, run once per session."""
    cache = {}
    runner = CliRunner()

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"report_{name}") / "report"
            cache[name] = runner.invoke(_entry, ["analyze", str(hostile[0][name].path), "-o", str(out), "-q"]), out
        return cache[name]

    return get
