"""Turn run stores into a report directory: ``report.html``, one PNG and SVG per figure, ``summary.json``.

``analyze_run`` (one run) and ``compare_runs`` (two or more) open the stores lazily, build every metric
the data allows as dask-backed xarray objects, compute them in one pass (local threads, or a
``dask.distributed`` scheduler), find the phases on the whole-net SNR, then draw and write.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from dask.callbacks import Callback

from pinnlog.analyzer.errors import (
    MissingGroupError,
    NothingToReportError,
    ReportArgumentError,
    ReportOutputError,  # re-exported: callers catch it from here
)
from pinnlog.analyzer.output import staged_directory, write_new
from pinnlog.analyzer.report import summary as S
from pinnlog.analyzer.report.comparison import comparison, matched_thresholds
from pinnlog.analyzer.report.compose import FIGURES, RunResult
from pinnlog.analyzer.report.drawing import draw_figures
from pinnlog.analyzer.report.html import render_report
from pinnlog.analyzer.scheduler import dask_scheduler
from pinnlog.analyzer.store.location import locate
from pinnlog.analyzer.store.read import open_run, require_group

__all__ = [
    "DEFAULT_SMOOTH",
    "DEFAULT_THRESHOLDS",
    "Report",
    "ReportOutputError",
    "analyze_run",
    "compare_runs",
    "default_out_dir",
    "run_label",
]

DEFAULT_THRESHOLDS = (0.1, 0.05, 0.01)
DEFAULT_SMOOTH = None  # auto: see auto_smooth
#: auto smoothing: one window per this many captures, at most the authors' notebook window (60).
CAPTURES_PER_WINDOW, MAX_AUTO_WINDOW = 50, 60
RESIDUAL_SNAPSHOTS = 4
SCHEDULER_CONNECT_TIMEOUT = "10s"

#: ``progress(description, done, total)``: called as work advances (from the calling thread).
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Report:
    """What was written: the directory, its files, and the summary document."""

    out_dir: Path
    html: Path
    summary_json: Path
    summary: dict
    figures: list[Path]


def run_label(path: str | os.PathLike) -> str:
    """A run's name: the last part of its path or URL without ``.zarr`` (``runs/ac.zarr`` -> ``ac``)."""
    name = str(path).rstrip("/").rsplit("/", 1)[-1] or "run"
    return name[: -len(".zarr")] if name.endswith(".zarr") and len(name) > 5 else name


def default_out_dir(path: str | os.PathLike) -> Path:
    """``NAME_report`` beside a local run; in the current directory for a URL."""
    name = run_label(path) + "_report"
    local = locate(path).local
    if local is None:
        return Path.cwd() / name
    return local.absolute().parent / name


# -- computing -----------------------------------------------------------------------------------------


def _snapshots(values: xr.DataArray, n: int) -> xr.DataArray:
    """``n`` captures spread evenly on a log scale, first and last included (the paper's snapshots)."""
    size = values.sizes["step"]
    idx = np.unique(np.round(np.geomspace(1, size, min(n, size))).astype(int) - 1)
    return values.isel(step=idx)


def _loss_terms(run: xr.DataTree) -> xr.Dataset:
    """The recorded loss terms: every ``loss_*`` scalar (``rec.step(step, loss_pde=..., ...)``)."""
    scalars = require_group(run, "scalars")
    names = [name for name in scalars.data_vars if str(name).startswith("loss_")]
    if not names:
        raise MissingGroupError("this run has no loss terms; pass them as rec.step(step, loss_pde=..., loss_bc=...)")
    return scalars[names]


def lazy_metrics(run: xr.DataTree, smooth: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Every metric this run's data allows, lazily: ``({name: xarray}, {name: why it is missing})``."""
    from pinnlog.analyzer import metrics as M

    lazy: dict[str, Any] = {}
    missing: dict[str, str] = {}
    recipes: dict[str, Callable[[], Any]] = {
        "snr": lambda: M.snr(run),
        "gradient_norms": lambda: M.gradient_norms(run),
        "snr_per_layer": lambda: M.snr(run, per_layer=True),
        "srr_b": lambda: M.srr_b(run),
        "srr_c": lambda: M.srr_c(run),
        "weight_norm": lambda: M.weight_norm(run),
        "mutual_information": lambda: M.mutual_information(run),
        "binarization": lambda: M.binarization(run),
        "residual_homogeneity": lambda: M.residual_homogeneity(run),
        "test_error": lambda: M.relative_l2(run),
        "loss": lambda: require_group(run, "scalars", "loss")["loss"],
        "loss_terms": lambda: _loss_terms(run),
        "residual": lambda: _snapshots(require_group(run, "residuals", "residual")["residual"], RESIDUAL_SNAPSHOTS),
        "rba_weight": lambda: _snapshots(require_group(run, "residuals", "rba_weight")["rba_weight"], RESIDUAL_SNAPSHOTS),
        "rba_weight_spread": lambda: M.rba_weight_spread(run),
    }
    for name, recipe in recipes.items():
        try:
            lazy[name] = recipe()
        except MissingGroupError as exc:
            missing[name] = str(exc)
    if smooth > 1:
        # As the authors draw it: the SNR of the smoothed mean and std norms, not a smoothed SNR.
        if "snr" in lazy:
            lazy["snr_smooth"] = M.smoothed_snr(run, smooth)
        if "snr_per_layer" in lazy:
            lazy["snr_per_layer_smooth"] = M.smoothed_snr(run, smooth, per_layer=True)
        for name in ("gradient_norms", "srr_b", "srr_c"):
            if name in lazy:
                lazy[f"{name}_smooth"] = M.sma(lazy[name], smooth)
    return lazy, missing


class _DaskProgress(Callback):
    """Reports finished/total tasks of the local scheduler, at most ten times a second."""

    def __init__(self, progress: ProgressCallback, description: str):
        super().__init__()
        self._progress, self._description, self._last = progress, description, 0.0

    def _posttask(self, key, result, dsk, state, worker_id):
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            done = len(state["finished"])
            self._progress(self._description, done, done + len(state["ready"]) + len(state["waiting"]) + len(state["running"]))


def dask_client(address: str | None, runs=()):
    """``analyzer.scheduler.dask_scheduler`` with this module's connect timeout (see there)."""
    return dask_scheduler(address, runs=runs, timeout=SCHEDULER_CONNECT_TIMEOUT)


def compute_all(lazy: dict[Any, Any], client: Any, progress: ProgressCallback, description: str) -> tuple[dict, list[str]]:
    """Compute a flat dict of xarray objects in one pass; returns it and the degenerate-value warnings met.

    One pass lets dask read each chunk of the store once for all the metrics that need it.
    """
    keys = [k for k, v in lazy.items() if dask.is_dask_collection(v)]
    result = dict(lazy)
    progress(description, 0, max(len(keys), 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if client is None:
            with _DaskProgress(progress, description):
                # dask's default scheduler for arrays is local threads; a configured one is respected
                computed = dask.compute(*(lazy[k] for k in keys))
        else:
            from distributed import as_completed

            futures = client.compute([lazy[k] for k in keys])
            for done, _ in enumerate(as_completed(futures, loop=client.loop), start=1):
                progress(description, done, len(futures))
            computed = client.gather(futures)
    result.update(zip(keys, computed, strict=True))
    notes = []
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and w.category.__module__.startswith("pinnlog"):
            if str(w.message) not in notes:
                notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    progress(description, 1, 1)
    return result, notes


# -- writing ----------------------------------------------------------------------------------------


def auto_smooth(runs: Sequence[xr.DataTree]) -> int:
    """The moving-average window when none is given: captures / 50, between 1 and 60.

    The authors' notebook smooths their ~3,000 captures with 60 (their text says 10); a run with a few
    hundred captures gets a few, one with under 100 none. Compared runs share the smallest window.
    """
    counts = []
    for run in runs:
        group = "gradient_stats" if "gradient_stats" in run.children else next(iter(run.children), None)
        counts.append(run[group].to_dataset().sizes.get("step", 0) if group else 0)
    return int(np.clip(min(counts, default=0) // CAPTURES_PER_WINDOW, 1, MAX_AUTO_WINDOW))


def _check_options(smooth: int | None, thresholds: Sequence[float]) -> None:
    if smooth is None:
        pass
    elif isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or smooth < 1:
        raise ReportArgumentError(f"--smooth must be a whole number >= 1 (1 = no smoothing), got {smooth!r}")
    if not thresholds or any(not (0 < float(t) < np.inf) for t in thresholds):
        raise ReportArgumentError(f"--threshold must be a positive test error such as 0.1 (10%), got {list(thresholds)!r}")


def _report(
    paths: Sequence[str | os.PathLike],
    labels: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    smooth: int | None,
    thresholds: Sequence[float],
    scheduler: str | None,
    progress: ProgressCallback | None,
) -> Report:
    progress = progress or (lambda description, done, total: None)
    thresholds = [float(t) for t in thresholds]
    progress("opening", 0, len(paths))
    runs = [open_run(p) for p in paths]
    smooth = auto_smooth(runs) if smooth is None else int(smooth)
    results, lazy = [], {}
    for label, path, run in zip(labels, paths, runs, strict=True):
        values, missing = lazy_metrics(run, smooth)
        if not any(not k.endswith("_smooth") for k in values):
            raise NothingToReportError(
                f"{path} holds none of the data a report draws; record gradient statistics "
                "(Recorder(schedule=...)) or rec.step(step, loss=..., test_error=...)"
            )
        attrs = dict(run.attrs)
        recorded = {name: int(run[name].to_dataset().sizes.get("step", 0)) for name in run.children}
        results.append(RunResult(label, str(path), attrs, recorded, missing=missing, smooth=smooth))
        lazy.update({(label, name): value for name, value in values.items()})
    with staged_directory(out_dir) as stage:  # the report appears whole, or the previous one stays
        return _compute_and_write(results, lazy, stage, Path(out_dir), smooth, thresholds, scheduler, progress)


#: the fields of a RunResult that ``summary.run_summary`` takes, by the same names
_SUMMARY_FIELDS = ("label", "path", "attrs", "recorded", "values", "phases", "phases_note", "layer_phases", "steps_to_error")


def _compute_and_write(
    results: list[RunResult],
    lazy: dict,
    stage: Path,
    out: Path,
    smooth: int,
    thresholds: list[float],
    scheduler: str | None,
    progress: ProgressCallback,
) -> Report:
    """Compute, find phases, draw and write into ``stage`` (renamed to ``out`` by the caller)."""
    from pinnlog.analyzer import metrics as M
    from pinnlog.analyzer.phases.detect import phases_from_metrics

    paths = [r.path for r in results]
    with dask_client(scheduler, runs=paths) as client:
        computed, notes = compute_all(lazy, client, progress, "computing metrics")
    for result in results:
        progress(f"phases and thresholds: {result.label}", 0, 1)
        result.values = {name: value for (label, name), value in computed.items() if label == result.label}
        result.phases, result.layer_phases, result.phases_note = phases_from_metrics(result.values, result.why_missing("snr"))
        error = result.values.get("test_error")
        result.steps_to_error = {t: (None if error is None else M.steps_to_error(error, t)) for t in thresholds}
    curves = {r.label: r.values.get("test_error") for r in results}
    if len(results) > 1:  # the steps-to-error chart shows the levels the comparison uses
        levels = matched_thresholds(curves, thresholds, results[0].label)
        for result in results:
            error = result.values.get("test_error")
            result.compare_levels = [dict(t) for t in levels]
            result.compare_steps = {
                t["name"]: (None if error is None else M.steps_to_error(error, t["threshold"])) for t in levels
            }
    figures, pngs, skipped = draw_figures(results, stage, progress)
    run_docs = [S.run_summary(**{name: getattr(r, name) for name in _SUMMARY_FIELDS}) for r in results]
    kind = "analyze" if len(results) == 1 else "compare"
    document = S.summary_document(
        kind,
        run_docs,
        options={"smooth": int(smooth), "thresholds": thresholds, "scheduler": scheduler},
        comparison_=comparison(run_docs, thresholds, curves) if kind == "compare" else None,
        figures=figures,
        skipped=skipped,
        warnings=notes,
    )
    write_new(stage / "summary.json", S.to_json(document))
    captions = {name: caption for name, (_, caption) in FIGURES.items()}
    write_new(stage / "report.html", render_report(document, pngs, captions))
    progress("writing report", 1, 1)
    return Report(out, out / "report.html", out / "summary.json", document, [out / f["png"] for f in figures])


def analyze_run(
    path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    smooth: int | None = DEFAULT_SMOOTH,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    scheduler: str | None = None,
    label: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Write the report of one run: ``report.html``, ``summary.json``, one PNG + SVG per figure.

    Parameters
    ----------
    path : str or path-like
        The run store (``*.zarr`` directory or URL).
    out_dir : path-like, optional
        Where to write; default :func:`default_out_dir` (``NAME_report`` beside the run).
    smooth : int, optional
        Moving-average window (captures) of the drawn curves; 1 draws the raw values; None picks
        :func:`auto_smooth`. The drawn SNR is the ratio of the smoothed mean and std norms, as the
        authors draw it. Phases, tables and ``summary.json`` always use the raw values.
    thresholds : sequence of float
        Test-error levels for "steps to reach" (default 10%, 5%, 1%).
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler; default: local threads.
    label : str, optional
        The run's name in the report's titles and ``summary.json`` (default: the store's name).
    progress : callable, optional
        ``progress(description, done, total)``.

    Raises
    ------
    PinnlogError
        A user mistake: the path is not a readable run, nothing drawable was recorded, the output cannot
        be written, the scheduler cannot be reached.
    """
    _check_options(smooth, thresholds)
    label = run_label(path) if label is None else str(label)
    return _report(
        [path],
        [label],
        out_dir if out_dir is not None else default_out_dir(path),
        smooth=smooth,
        thresholds=thresholds,
        scheduler=scheduler,
        progress=progress,
    )


def compare_runs(
    paths: Sequence[str | os.PathLike],
    labels: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    smooth: int | None = DEFAULT_SMOOTH,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Write one report overlaying two or more runs (one colour each) with the ratios between them.

    The first run is the reference: ``summary.json``'s ``comparison`` gives every other run's speed-up
    to each test-error threshold and its per-phase differences against it. ``labels`` default to the
    runs' names; ``out_dir`` to ``A_vs_B_report`` beside the first run. Other parameters as
    :func:`analyze_run`.
    """
    paths = list(paths)
    _check_options(smooth, thresholds)
    if len(paths) < 2:
        raise ReportArgumentError("compare needs at least two runs; use `pinnlog analyze RUN` for one")
    if labels is None or len(labels) == 0:
        labels = [run_label(p) for p in paths]
        if len(set(labels)) < len(labels):
            labels = [f"{label} ({i + 1})" for i, label in enumerate(labels)]
    labels = [str(label) for label in labels]
    if len(labels) != len(paths):
        raise ReportArgumentError(f"got {len(labels)} --label for {len(paths)} runs; give one --label per run, in order")
    if len(set(labels)) < len(labels) or any(not label.strip() for label in labels):
        raise ReportArgumentError(f"run labels must be distinct and non-empty, got {labels!r}; fix the --label values")
    if out_dir is None:
        first = default_out_dir(paths[0])
        out_dir = first.with_name("_vs_".join(run_label(p) for p in paths)[:120] + "_report")
    return _report(paths, labels, out_dir, smooth=smooth, thresholds=thresholds, scheduler=scheduler, progress=progress)
