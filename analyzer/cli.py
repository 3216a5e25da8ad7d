"""The ``pinnlog`` command line (typer).

Commands are thin: parse, call one library function, print. A :class:`PinnlogError` (a user mistake)
prints one line and exits 2; anything else is an internal error and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pinnlog.analyzer import __version__
from pinnlog.analyzer.errors import PinnlogError

app = typer.Typer(
    name="pinnlog",
    help="See how a neural network learns: inspect, analyse and compare pinnlog run stores.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

RunArg = Annotated[str, typer.Argument(help="Run store: a *.zarr directory or a URL (memory://, s3://, ...).", show_default=False)]


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"pinnlog {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """See how a neural network learns: inspect, analyse and compare pinnlog run stores."""


def _human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@app.command()
def info(run: RunArg) -> None:
    """Show what a run store holds: format, status, steps committed per group, shapes, sizes, config.

    Reads only metadata, so it is instant even on a store that is still being written.
    """
    from pinnlog.analyzer.io import describe_run

    facts = describe_run(run)
    console.print(f"[bold]{facts['path']}[/bold]", markup=True, highlight=False)
    head = Table.grid(padding=(0, 2))
    for key in ("pinnlog_format", "status", "created", "pinnlog_version", "torch_version", "device", "model", "optimizer", "n_batches", "schedule", "raw_schedule"):
        if key in facts["attrs"]:
            head.add_row(key, str(facts["attrs"][key]))
    console.print(head, markup=False)
    table = Table(title="groups", title_justify="left")
    for col in ("group", "committed", "variables (shape)", "on disk"):
        table.add_column(col, overflow="fold")
    for g in facts["groups"]:
        shapes = ", ".join(f"{v} {tuple(s)}" for v, s in g["shapes"].items())
        table.add_row(g["name"], str(g["n_committed"]), shapes, _human_bytes(g["bytes"]))
    console.print(table, markup=False)
    if facts["attrs"].get("config"):
        console.print("config:", facts["attrs"]["config"], markup=False, highlight=False)
    console.print(f"total on disk: {_human_bytes(facts['bytes'])}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pinnlog`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except PinnlogError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        sys.exit(130)
    except __import__("click").ClickException as exc:  # unknown option, missing argument: a user mistake
        exc.show()
        sys.exit(2)
