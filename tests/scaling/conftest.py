"""Fixtures of the scaling tests: the real ``pinnlog`` entry point under click's runner, one-thread torch."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pinnlog.analyzer.cli import main

try:
    import torch
except ImportError:  # the tests that need it skip themselves (pytest.importorskip)
    torch = None

if torch is not None:
    torch.set_num_threads(1)  # tiny models on a shared 2-core box: a second thread only spins


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    main(list(args))


@pytest.fixture
def cli():
    """``cli("analyze", path, "-o", out, env={...}) -> click.testing.Result`` with separate stdout/stderr."""
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(_entry, [str(a) for a in args], env=env)

    return invoke
