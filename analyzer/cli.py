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

RunArg = Annotated[
    str, typer.Argument(help="Run store: a *.zarr directory or a URL (memory://, s3://, ...).", show_default=False)
]


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
    from pinnlog.analyzer.store.format import RUN_DESCRIPTION
    from pinnlog.analyzer.store.read import describe_run

    facts = describe_run(run)
    console.print(f"[bold]{facts['path']}[/bold]", markup=True, highlight=False)
    head = Table.grid(padding=(0, 2))
    for key in RUN_DESCRIPTION:
        if key not in facts["attrs"] or key == "config":  # the config is printed last, whole
            continue
        value = facts["attrs"][key]
        groups = value.get("param_groups") if key == "optimizer" and isinstance(value, dict) else None
        if isinstance(groups, list) and groups:  # one row per param group (fine-tuning uses several)
            head.add_row(key, str(value.get("name", "?")))
            for i, group in enumerate(groups):
                head.add_row(f"  param group {i}", str(group))
            continue
        head.add_row(key, str(value))
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


SmoothOpt = Annotated[
    int | None,
    typer.Option(
        "--smooth",
        min=1,
        show_default=False,
        help="Moving-average window (in captures) of the drawn curves; 1 draws raw values (default: "
        "captures/50, from 1 to 60). Phases, tables and summary.json always use raw values.",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        show_default=False,
        help="Compute on this dask.distributed scheduler (tcp://host:8786) instead of local threads.",
    ),
]


def _report_dir(default: str):
    """``--out/-o DIR``: where a report goes; ``default`` says where it goes without it."""
    return typer.Option("--out", "-o", show_default=False, file_okay=False, help=f"Directory to write into (default: {default}).")


ReportDirOpt = Annotated[Path | None, _report_dir("the run's name + _report, beside the run")]
CompareDirOpt = Annotated[Path | None, _report_dir("A_vs_B_report beside the first run")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors (no progress, no summary).")]
ThresholdOpt = Annotated[
    list[float] | None,
    typer.Option(
        "--threshold",
        "-t",
        show_default=False,
        help="Test error to report the steps to reach; repeat for several (default: 0.1, 0.05, 0.01).",
    ),
]


def _print_run(run: dict) -> None:
    from pinnlog.analyzer.report.summary import threshold_name

    table = Table(title=f"phases of {run['label']}", title_justify="left")
    for col in ("phase", "first step", "last step", "median SNR"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for p in run["phases"] or []:
        median = "—" if p["median_snr"] is None else f"{p['median_snr']:.3g}"
        table.add_row(p["label"], f"{p['first_step']:,}", f"{p['last_step']:,}", median)
    if run["phases"]:
        console.print(table, markup=False)
    else:
        console.print(f"no phases for {run['label']}: {run['phases_note']}", markup=False, highlight=False, soft_wrap=True)
    reached = ", ".join(
        f"≤{threshold_name(e['threshold'])}: {'never' if e['step'] is None else format(e['step'], ',')}"
        for e in run["steps_to_error"]
    )
    if run["final"]["test_error"] is not None:
        console.print(f"steps to test error {reached}", markup=False, highlight=False, soft_wrap=True)


def _print_report(report) -> None:
    doc = report.summary
    for run in doc["runs"]:
        _print_run(run)
    comparison = doc["comparison"] or {}
    for line in [comparison.get("headline"), *(s["text"] for s in comparison.get("speedups", [])), *comparison.get("notes", [])]:
        if line:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    for skipped in doc["skipped"]:
        console.print(
            f"skipped {skipped['figure']}: {skipped['reason']}", markup=False, highlight=False, style="yellow", soft_wrap=True
        )
    console.print(
        f"wrote {report.html} ({len(report.figures)} figures, summary.json beside it)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def analyze(
    run: RunArg,
    out: ReportDirOpt = None,
    smooth: SmoothOpt = None,
    threshold: ThresholdOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write the report of one run: report.html, summary.json, and one PNG and SVG per figure.

    Figures (the paper's Fig 6-12, A13-A14), each drawn when its data was recorded and otherwise listed
    in the report with the recorder option that records it: whole-net SNR with the mean and std of the
    gradient and the phases (fitting, diffusion, total diffusion) shaded; SNR per layer; SRR_B and SRR_C
    with the test error; mutual information and binarization per layer; weight norm per layer; loss and
    test error; residual distribution, homogeneity and RBA weights.

    summary.json (schema in docs/report.md) holds the run's metadata, phases, final metrics and the
    steps to reach 10%, 5% and 1% test error. The report is one self-contained HTML file.

    Exit status: 0 success; 2 a user mistake (the one-line message names the fix); 1 an internal error.
    """
    from pinnlog.analyzer.report import DEFAULT_THRESHOLDS, analyze_run
    from pinnlog.analyzer.report.progress import DelayedProgress

    with DelayedProgress(err_console, enabled=not quiet) as progress:
        report = analyze_run(
            run, out, smooth=smooth, thresholds=threshold or DEFAULT_THRESHOLDS, scheduler=scheduler, progress=progress
        )
    if not quiet:
        _print_report(report)


@app.command()
def compare(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Two or more run stores (*.zarr directories or URLs); the first is the reference.", show_default=False
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            show_default=False,
            help="Name of a run in the report; repeat once per run, in order (default: the runs' names).",
        ),
    ] = None,
    out: CompareDirOpt = None,
    smooth: SmoothOpt = None,
    threshold: ThresholdOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Overlay two or more runs in one report (one colour per run) and compare them.

    Writes the same outputs as analyze, every figure with all runs overlaid, plus a bar chart of the steps
    each run takes to reach 10%, 5% and 1% test error. summary.json's "comparison" gives, for every run
    against the first (the reference), how many times sooner it reaches each error (e.g. "RBA reaches 10%
    test error 7.6x sooner than vanilla") and how its phases differ (onset, duration, median SNR). The
    report shows every run's phase table.

    Exit status: 0 success; 2 a user mistake (the one-line message names the fix); 1 an internal error.
    """
    from pinnlog.analyzer.report import DEFAULT_THRESHOLDS, compare_runs
    from pinnlog.analyzer.report.progress import DelayedProgress

    with DelayedProgress(err_console, enabled=not quiet) as progress:
        report = compare_runs(
            runs,
            label or None,
            out,
            smooth=smooth,
            thresholds=threshold or DEFAULT_THRESHOLDS,
            scheduler=scheduler,
            progress=progress,
        )
    if not quiet:
        _print_report(report)


@app.command()
def watch(
    run: RunArg,
    out: ReportDirOpt = None,
    every: Annotated[float, typer.Option("--every", min=0.1, help="Seconds between two looks at the run.")] = 30.0,
    smooth: SmoothOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Keep a run's report (the files of analyze) up to date while the run is being recorded.

    Every --every seconds, reads the run's status and committed steps (metadata only); when they changed,
    rewrites report.html, summary.json and the figures from the steps committed so far. Reading never
    blocks or slows the writer. Stops after the report that first sees the run complete (or interrupted),
    which covers the whole run; Ctrl-C stops it earlier. A run killed without closing stays "recording":
    run `pinnlog verify --repair RUN` to mark it interrupted.

    Exit status: 0 the run finished and its report is written; 2 a user mistake (no such run, nothing to
    draw); 1 an internal error; 130 interrupted with Ctrl-C.
    """
    from pinnlog.analyzer.watch import watch_run

    def said(refresh) -> None:
        if quiet:
            return
        counts = ", ".join(f"{group} {n:,}" for group, n in refresh.committed.items())
        done = f"report in {refresh.report.out_dir}" if refresh.report is not None else refresh.waiting_for
        err_console.print(f"{refresh.status}: {counts or 'nothing committed'}; {done}", markup=False, highlight=False)

    report = watch_run(run, out, every=every, smooth=smooth, scheduler=scheduler, on_refresh=said)
    if not quiet and report is not None:
        _print_report(report)


def _print_verify(report) -> None:
    from rich.text import Text

    style = {"ok": "green", "warning": "yellow", "damaged": "bold red"}
    table = Table(title=Text(f"verify {report.path}"), title_justify="left")
    for col in ("level", "where", "check", "detail"):
        table.add_column(col, overflow="fold")
    for f in report.findings:  # Text cells: names and values from the store are never read as markup
        table.add_row(Text(f.level, style=style.get(f.level, "")), Text(f.where), Text(f.check), Text(f.detail))
    console.print(table)
    usable = ", ".join(f"{g} {report.usable.get(g, 0)}/{n}" for g, n in report.committed.items())
    verdict = "healthy" if report.healthy else "DAMAGED; usable rows per group"
    console.print(Text(f"{verdict}: {usable}" if usable else verdict, style="green" if report.healthy else "bold red"))


@app.command()
def verify(
    run: RunArg,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Close a store left open by a killed run: trim every array to its committed "
            "steps, remove temporary files, mark it 'interrupted', consolidate metadata. Never drops a "
            "committed step; use it only when no process is writing the store.",
        ),
    ] = False,
    metadata_only: Annotated[
        bool, typer.Option("--metadata-only", help="Check metadata only; do not decode the chunks (instant on big stores).")
    ] = False,
) -> None:
    """Check a run store end to end and print one line per check.

    Checks the format version and root attributes; every group's arrays against format 1 (dims, dtypes,
    allowed codecs, capacity >= n_committed, sizes that agree with the layout); that every committed chunk
    decodes; that the steps increase; that sum_rms2 = sum_mu2 + sum_sigma2; that the SNR from raw
    batch-gradient snapshots equals the SNR from the stored reductions to 1e-6; that no file is a link
    leaving the store or a pipe; and the status. Nothing in the store is ever unpickled or evaluated.

    Exit status: 0 healthy (warnings allowed); 1 damaged, with the rows per group that are still usable;
    2 not a pinnlog store (or a format this version cannot read).
    """
    from pinnlog.analyzer.store import repair_run, verify_run

    if repair:
        result = repair_run(run)
        for action in result.actions:
            console.print(f"repaired: {action}", markup=False, highlight=False)
        report = result.after
    else:
        report = verify_run(run, decode=not metadata_only)
    _print_verify(report)
    raise typer.Exit(report.exit_code)


@app.command("import-paper-logs")
def import_paper_logs(
    src: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            show_default=False,
            help="Folder of one run's text logs (grad_stats2.txt, losses.txt, ...).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", show_default=False, help="Run store to write (e.g. ac_rba.zarr).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Convert the paper authors' text logs into a pinnlog run store, to analyse or compare them like a run.

    Reads grad_stats2.txt (per weight matrix: norm of the batch-mean gradient, of the batch std, of the
    weights) into gradient_stats, and losses.txt (test error, loss) into scalars. The whole-net logs
    grad_stats.txt and grad_rms.txt are cross-checked against the per-layer rows, not stored; a log that
    stops early is fine. The network is the paper's MLP [2] + [128] x 6 + [1]; the store's imported_from
    attribute says what was converted and how well the logs agree.

    Exit status: 0 success; 2 a user mistake (missing file, OUT exists without --overwrite); 1 an internal error.
    """
    from pinnlog.analyzer.paper_logs import import_paper_logs as convert
    from pinnlog.analyzer.report.progress import DelayedProgress

    with DelayedProgress(err_console) as progress:
        written = convert(src, out, overwrite=overwrite, progress=progress)
    console.print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pinnlog`` console script."""
    try:
        code = app(args=argv, prog_name="pinnlog", standalone_mode=False)  # click returns a command's typer.Exit(code) here
        if isinstance(code, int) and code:
            sys.exit(code)
    except PinnlogError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        sys.exit(130)
    # typer >= 0.16 raises its own vendored click's exceptions (subclasses of TyperException), not click's
    except (__import__("click").ClickException, typer.exceptions.TyperException) as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `pinnlog` alone: the help is the message
            exc.show()
            sys.exit(2)
        # unknown option, missing argument, bad value: a user mistake, said in one line
        ctx = getattr(exc, "ctx", None)
        hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
        message = " ".join(exc.format_message().split()).rstrip(".")
        err_console.print(f"error: {message}{hint}", markup=False, highlight=False)
        sys.exit(2)
