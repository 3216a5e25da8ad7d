"""Run the real ``pinnlog`` entry point (``main``, which maps errors to exit codes) under click's CliRunner."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pinnlog.analyzer.cli import main


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    main(list(args))


@pytest.fixture
def cli():
    """``cli("analyze", path, "-o", out) -> click.testing.Result`` with separate ``stdout``/``stderr``."""
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(_entry, [str(a) for a in args], env=env)

    return invoke
