"""The ``pinnlog`` command line (typer).

Commands are thin: parse, call one library function, print. Exit status, the same for every command
(docs/cli.md): 0 success; 1 damage found by ``verify``; 2 a user mistake (a :class:`PinnlogError`, one
line on stderr); 3 an internal error (a bug: the traceback is printed); 130 interrupted (Ctrl-C, one line
saying what was kept). Every string that comes from a store or a path goes through ``printable`` before
it reaches the terminal.
"""

from __future__ import annotations

import enum
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pinnlog.analyzer import __version__
from pinnlog.analyzer.errors import ArgumentError, CorruptStoreError, PinnlogError, PinnlogWarning
from pinnlog.analyzer.output import Interrupted, printable

#: Exit status of every command (docs/cli.md).
EXIT_OK, EXIT_DAMAGED, EXIT_USER_MISTAKE, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

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


def _human_bytes(n: float) -> str:
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
    console.print(printable(facts["path"]), style="bold", markup=False, highlight=False)
    head = Table.grid(padding=(0, 2))
    for key in RUN_DESCRIPTION:
        if key not in facts["attrs"] or key == "config":  # the config is printed last, whole
            continue
        value = facts["attrs"][key]
        groups = value.get("param_groups") if key == "optimizer" and isinstance(value, dict) else None
        if isinstance(groups, list) and groups:  # one row per param group (fine-tuning uses several)
            head.add_row(key, printable(value.get("name", "?")))
            for i, group in enumerate(groups):
                head.add_row(f"  param group {i}", printable(group))
            continue
        head.add_row(key, printable(value))
    console.print(head, markup=False)
    table = Table(title="groups", title_justify="left")
    for col in ("group", "committed", "variables (shape)", "on disk"):
        table.add_column(col, overflow="fold")
    for g in facts["groups"]:
        shapes = ", ".join(f"{printable(v)} {tuple(s)}" for v, s in g["shapes"].items())
        table.add_row(printable(g["name"]), str(g["n_committed"]), shapes, _human_bytes(g["bytes"]))
    console.print(table, markup=False)
    if facts["attrs"].get("config"):
        console.print("config:", printable(facts["attrs"]["config"]), markup=False, highlight=False)
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
    list[str] | None,
    typer.Option(
        "--threshold",
        "-t",
        show_default=False,
        help="Test error to report the steps to reach: a fraction in (0, 1) such as 0.05, or a percentage such as 5%; "
        "repeat for several (default: 0.1, 0.05, 0.01).",
    ),
]


def parse_threshold(text: str) -> float:
    """``"0.05"`` -> 0.05 and ``"5%"`` -> 0.05; anything else (``10``, ``1.5``, ``0``, ``150%``) is refused.

    A bare number >= 1 is refused rather than guessed: ``-t 10`` could mean 10 % or 1000 %.
    """
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1].strip() if percent else raw)
    except ValueError:
        value = float("nan")
    value = value / 100 if percent else value
    if not 0 < value < 1:  # NaN fails too
        raise ArgumentError(
            f"-t/--threshold {printable(text)!r}: give a fraction in (0, 1) such as 0.05, or a percentage such as 5%"
        )
    return value


def _thresholds(values: list[str] | None) -> tuple[float, ...] | None:
    return tuple(parse_threshold(v) for v in values) if values else None


def _print_run(run: dict) -> None:
    from pinnlog.analyzer.report.summary import threshold_name

    table = Table(title=f"phases of {printable(run['label'])}", title_justify="left")
    for col in ("phase", "first step", "last step", "median SNR"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for p in run["phases"] or []:
        median = "—" if p["median_snr"] is None else f"{p['median_snr']:.3g}"
        table.add_row(printable(p["label"]), f"{p['first_step']:,}", f"{p['last_step']:,}", median)
    if run["phases"]:
        console.print(table, markup=False)
    else:
        console.print(
            printable(f"no phases for {run['label']}: {run['phases_note']}"), markup=False, highlight=False, soft_wrap=True
        )
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
            console.print(printable(line), markup=False, highlight=False, soft_wrap=True)
    for skipped in doc["skipped"]:
        console.print(
            printable(f"skipped {skipped['figure']}: {skipped['reason']}"),
            markup=False,
            highlight=False,
            style="yellow",
            soft_wrap=True,
        )
    console.print(
        printable(f"wrote {report.html} ({len(report.figures)} figures, summary.json beside it)"),
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

    Exit status: 0 success; 2 a user mistake (the one-line message names the fix); 3 an internal error;
    130 interrupted (the previous report, if any, is left as it was).
    """
    from pinnlog.analyzer.report import analyze_run

    _build_report(analyze_run, run, out, smooth=smooth, threshold=threshold, scheduler=scheduler, quiet=quiet)


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

    Exit status: 0 success; 2 a user mistake (the one-line message names the fix); 3 an internal error;
    130 interrupted (the previous report, if any, is left as it was).
    """
    from pinnlog.analyzer.report import compare_runs

    _build_report(compare_runs, runs, label or None, out, smooth=smooth, threshold=threshold, scheduler=scheduler, quiet=quiet)


def _build_report(
    build: Callable[..., Any],
    *args: Any,
    smooth: int | None,
    threshold: list[str] | None,
    scheduler: str | None,
    quiet: bool,
) -> None:
    """Run ``build`` (``analyze_run`` or ``compare_runs``) under a progress bar; print its report unless --quiet."""
    from pinnlog.analyzer.report import DEFAULT_THRESHOLDS
    from pinnlog.analyzer.report.progress import DelayedProgress

    with DelayedProgress(err_console, enabled=not quiet) as progress:
        report = build(
            *args,
            smooth=smooth,
            thresholds=_thresholds(threshold) or DEFAULT_THRESHOLDS,
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
    once: Annotated[
        bool, typer.Option("--once", help="Write the report of what is committed now and stop, finished or not.")
    ] = False,
    smooth: SmoothOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Keep a run's report (the files of analyze) up to date while the run is being recorded.

    Every --every seconds, reads the run's status and committed steps (metadata only); when they changed,
    rewrites report.html, summary.json and the figures from the steps committed so far, and prints the
    phase the run is in (fitting, diffusion, total diffusion: docs/phases.md). Reading never
    blocks or slows the writer. Stops after the report that first sees the run complete (or interrupted),
    which covers the whole run; Ctrl-C stops it earlier, --once after the first report. A run killed without closing stays "recording":
    run `pinnlog verify --repair RUN` to mark it interrupted.

    Exit status: 0 the run finished and its report is written; 2 a user mistake (no such run, nothing to
    draw); 3 an internal error; 130 interrupted with Ctrl-C (the last complete report is kept).
    """
    from pinnlog.analyzer.watch import watch_run

    written: list = []

    def said(refresh) -> None:
        if refresh.report is not None:
            written.append(refresh.report)
        if quiet:
            return
        counts = ", ".join(f"{group} {n:,}" for group, n in refresh.committed.items())
        done = f"report in {refresh.report.out_dir}" if refresh.report is not None else refresh.waiting_for
        phase = f"; phase: {refresh.phase}" if refresh.phase else ""
        err_console.print(
            printable(f"{refresh.status}: {counts or 'nothing committed'}{phase}; {done}"), markup=False, highlight=False
        )

    try:
        report = watch_run(run, out, every=every, smooth=smooth, scheduler=scheduler, on_refresh=said, once=once)
    except KeyboardInterrupt:
        if written:  # between two refreshes, or during one (which leaves the previous report as it was)
            raise Interrupted(f"interrupted; {written[-1].out_dir} holds the report of the last refresh") from None
        raise
    if not quiet and report is not None:
        _print_report(report)


class ExportTo(enum.StrEnum):
    csv = "csv"
    netcdf = "netcdf"
    tensorboard = "tensorboard"


@app.command()
def export(
    run: RunArg,
    to: Annotated[
        ExportTo,
        typer.Option(
            "--to",
            help="csv: a folder of CSV files; netcdf: one .nc file; tensorboard: event files in DIR/RUN_NAME/ "
            "(needs pinnlog[tensorboard]).",
        ),
    ] = ExportTo.csv,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            show_default=False,
            help="Where to write (default beside the run: NAME_curves/, NAME.nc, NAME_tensorboard/).",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write the run's computed curves and phase table as data: CSV, NetCDF or TensorBoard event files.

    Every curve the data allows: whole-net and per-layer SNR (Eq 8), SRR_B (Eq 17), SRR_C (Eq 13), the
    norms of the gradient's batch mean and std, weight norms per layer, mutual information (Eq 31) and
    binarization per layer, the residuals' dispersion (Eq 20), every recorded scalar, and the phase
    table. Each curve keeps its units and the paper's equation (columns.csv for CSV, attributes in
    NetCDF). TensorBoard shows the curves under group/name tags and the phases as phases/phase (the
    phase index, stepping up at each boundary) and a text table.

    Exit status: 0 success; 2 a user mistake; 3 an internal error; 130 interrupted (nothing written, or
    the previous export left as it was).
    """
    from pinnlog.analyzer.export import export_run
    from pinnlog.analyzer.report.progress import DelayedProgress

    with DelayedProgress(err_console, enabled=not quiet) as progress:
        written = export_run(run, to.value, out, progress=progress)
    if not quiet:
        console.print(printable(f"wrote {written}"), markup=False, highlight=False, soft_wrap=True)


def _print_verify(report) -> None:
    from rich.text import Text

    style = {"ok": "green", "warning": "yellow", "damaged": "bold red"}
    table = Table(title=Text(f"verify {printable(report.path)}"), title_justify="left")
    for col in ("level", "where", "check", "detail"):
        table.add_column(col, overflow="fold")
    for f in report.findings:  # Text cells: names and values from the store are never read as markup
        cells = (printable(f.where), printable(f.check), printable(f.detail))
        table.add_row(Text(f.level, style=style.get(f.level, "")), *(Text(c) for c in cells))
    console.print(table)
    usable = ", ".join(f"{printable(g)} {report.usable.get(g, 0)}/{n}" for g, n in report.committed.items())
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
    2 not a pinnlog store (or a format this version cannot read), or --repair on a store that cannot be
    written (nothing is changed); 3 an internal error; 130 interrupted.
    """
    from pinnlog.analyzer.store import repair_run, verify_run

    if repair:
        result = repair_run(run)
        for action in result.actions:
            console.print(printable(f"repaired: {action}"), markup=False, highlight=False)
        report = result.after
    else:
        report = verify_run(run, decode=not metadata_only)
    _print_verify(report)
    raise typer.Exit(report.exit_code)


def parse_widths(text: str) -> list[int]:
    """``"2,128,128,1"`` -> ``[2, 128, 128, 1]``: at least two positive whole numbers."""
    try:
        widths = [int(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        widths = []
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ArgumentError(f"--widths {printable(text)!r}: give the layer widths as IN,HIDDEN,...,OUT, e.g. 2,128,128,1")
    return widths


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
    widths: Annotated[
        str | None,
        typer.Option(
            "--widths",
            show_default=False,
            help="Layer widths of the network that wrote the logs, IN,HIDDEN,...,OUT (default: the paper's "
            "2,128,128,128,128,128,128,1).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Convert the paper authors' text logs into a pinnlog run store, to analyse or compare them like a run.

    Reads grad_stats2.txt (per weight matrix: norm of the batch-mean gradient, of the batch std, of the
    weights) into gradient_stats, and losses.txt (test error, loss) into scalars. The whole-net logs
    grad_stats.txt and grad_rms.txt are cross-checked against the per-layer rows, not stored; a log that
    stops early is fine. The logs hold norms, not shapes: the network is the paper's MLP [2] + [128] x 6
    + [1] unless --widths says otherwise (the number of weight matrices in the logs must match). The
    store's imported_from attribute says what was converted and how well the logs agree.

    Exit status: 0 success; 2 a user mistake (missing file, widths that do not match the logs, OUT exists
    without --overwrite, OUT inside another store); 3 an internal error; 130 interrupted.
    """
    from pinnlog.analyzer.output import check_output_path, is_url, staged_store
    from pinnlog.analyzer.paper_logs import PAPER_WIDTHS, WidthsMismatchError
    from pinnlog.analyzer.paper_logs import import_paper_logs as convert
    from pinnlog.analyzer.report.progress import DelayedProgress

    layer_widths = parse_widths(widths) if widths is not None else list(PAPER_WIDTHS)
    if not is_url(str(out)):
        target = check_output_path(out, directory=True, store=True)
        if target.exists() and not overwrite:
            raise PinnlogError(f"{out} already exists; pass --overwrite or choose another -o")
    try:
        with DelayedProgress(err_console) as progress:
            if is_url(str(out)):
                written = convert(src, out, overwrite=overwrite, widths=layer_widths, progress=progress)
            else:  # built beside OUT and renamed into place: Ctrl-C leaves the previous store or nothing
                with staged_store(out) as staged:
                    convert(src, staged, widths=layer_widths, progress=progress)
                written = out
    except WidthsMismatchError as exc:
        raise PinnlogError(
            f"{src} logs {exc.n_tensors} weight matrices but the widths {','.join(map(str, exc.widths))} describe "
            f"{len(exc.widths) - 1}; pass --widths with {exc.n_tensors + 1} numbers IN,HIDDEN,...,OUT"
        ) from None
    console.print(printable(f"wrote {written}"), markup=False, highlight=False, soft_wrap=True)


def _quiet_unraisable(hook):
    """An unraisable-exception hook that drops the KeyboardInterrupt a Ctrl-C can leave in a finalizer."""

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    return quiet


def _interrupted(message: str) -> None:
    # A second Ctrl-C (or one delivered to a finalizer while exiting) must not print a trace.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
    err_console.print(printable(message), markup=False, highlight=False)
    sys.exit(EXIT_INTERRUPTED)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # One line per warning, without Python's source location: the command line's reader is not the code's.
    text = str(message) if issubclass(category, PinnlogWarning) else f"{category.__name__}: {message}"
    err_console.print(f"warning: {printable(text)}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pinnlog`` console script (exit status: see the module docstring)."""
    warnings.showwarning = _show_warning
    try:
        # The command runs without click's main(), which would turn Ctrl-C into a blank line and an Abort
        # and lose what the interrupted write kept; every exception is answered below instead.
        command = typer.main.get_command(app)
        args = sys.argv[1:] if argv is None else list(argv)
        with command.make_context("pinnlog", args) as ctx:
            command.invoke(ctx)
    except Interrupted as exc:  # a write was interrupted: it says what was kept
        _interrupted(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        _interrupted("interrupted; nothing written")
    except PinnlogError as exc:
        # The library says what to do in Python terms; an error may carry the command line's own wording.
        message = getattr(exc, "cli_message", None) or str(exc)
        err_console.print(f"error: {printable(message)}", markup=False, highlight=False)
        # a damaged store (a chunk failing its checksum or the manifest ...) is not the user's mistake (issue 13)
        sys.exit(EXIT_DAMAGED if isinstance(exc, CorruptStoreError) else EXIT_USER_MISTAKE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    # typer >= 0.16 raises its own vendored click's exceptions (subclasses of TyperException), not click's
    except (__import__("click").ClickException, typer.exceptions.TyperException) as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and hasattr(exc, "show"):  # `pinnlog` alone: the help is the message
            exc.show()
            sys.exit(EXIT_USER_MISTAKE)
        # unknown option, missing argument, bad value: a user mistake, said in one line
        usage_ctx = getattr(exc, "ctx", None)
        hint = f"; see '{usage_ctx.command_path} --help'" if usage_ctx is not None else ""
        message = " ".join(exc.format_message().split()).rstrip(".")
        err_console.print(f"error: {printable(message)}{hint}", markup=False, highlight=False)
        sys.exit(EXIT_USER_MISTAKE)
    except BrokenPipeError:  # `pinnlog info run.zarr | head`: the reader left; not an error of ours
        sys.stderr.close()
        sys.exit(EXIT_OK)
    except Exception:
        traceback.print_exc()
        err_console.print(
            "internal error: this is a bug in pinnlog; please report it with the traceback above", markup=False, highlight=False
        )
        sys.exit(EXIT_INTERNAL_ERROR)
