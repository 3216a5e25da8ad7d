"""A run's computed curves and phase table as data: CSV, NetCDF, or TensorBoard event files.

:func:`run_curves` computes every curve the run's data allows (one dask pass) and returns one Dataset per
recording cadence, because the groups are captured at different steps: ``gradient_stats`` (whole-net and
per-layer SNR, SRR_B, SRR_C, the norms of the gradient's batch mean and std, weight norms),
``activations`` (mutual information and binarization per hidden layer), ``residuals`` (dispersion of the
per-sample residuals), ``scalars`` (every ``rec.step`` keyword) and ``phases`` (the phase table of the
whole-net SNR). Every variable carries ``long_name``, ``units`` and the paper's ``equation``.

:func:`export_run` writes them: ``csv`` a folder of one CSV per Dataset plus ``columns.csv`` (file, column,
long name, units, equation); ``netcdf`` one file with a NetCDF group per Dataset (``xarray.open_datatree``);
``tensorboard`` a folder of event files under ``DIR/LABEL/`` (the optional extra ``pinnlog[tensorboard]``).
Outputs are built beside the target and renamed into place (:mod:`pinnlog.analyzer.output`).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pinnlog.analyzer.errors import ExportError, MissingGroupError, PinnlogError
from pinnlog.analyzer.output import check_output_path, is_url, open_new, staged_directory, staged_file

__all__ = ["ExportError", "ExportFormat", "default_export_path", "export_run", "run_curves"]

ProgressCallback = Callable[[str, int, int], None]


class ExportFormat(enum.StrEnum):
    """What ``pinnlog export --to`` writes."""

    csv = "csv"
    netcdf = "netcdf"
    tensorboard = "tensorboard"


#: Units of the exported curves that the metric functions leave implicit ("1": a pure number).
UNITS = {
    "snr": "1",
    "snr_per_layer": "1",
    "srr_b": "1",
    "srr_c": "1",
    "gradient_mean_norm": "loss units / parameter units",
    "gradient_std_norm": "loss units / parameter units",
    "weight_norm": "parameter units",
    "mutual_information": "bit",
    "binarization": "1",
    "residual_cv": "1",
    "residual_max_over_mean": "1",
    "test_error": "1",
}


def _describe(da: xr.DataArray, name: str, equation: str | None = None, long_name: str | None = None) -> xr.DataArray:
    attrs = {k: v for k, v in da.attrs.items() if isinstance(v, (str, int, float))}
    attrs["long_name"] = long_name or str(attrs.get("long_name", name))
    attrs["equation"] = equation or str(attrs.get("equation", "none"))
    attrs["units"] = str(attrs.get("units") or UNITS.get(name, "as recorded"))
    return da.rename(name).assign_attrs(attrs)


def _lazy_curves(run: xr.DataTree) -> dict[str, dict[str, Any]]:
    from pinnlog.analyzer import metrics as M
    from pinnlog.analyzer.store.read import require_group

    def gradient():
        norms = M.gradient_norms(run)
        return {
            "snr": _describe(M.snr(run), "snr"),
            "srr_b": _describe(M.srr_b(run), "srr_b"),
            "gradient_mean_norm": _describe(norms["mean_norm"], "gradient_mean_norm", "Eq. 8", "‖μ‖, norm of the batch mean"),
            "gradient_std_norm": _describe(norms["std_norm"], "gradient_std_norm", "Eq. 8", "‖σ‖, norm of the batch std"),
            "snr_per_layer": _describe(M.snr(run, per_layer=True), "snr_per_layer"),
            "weight_norm": _describe(M.weight_norm(run), "weight_norm"),
        }

    def adam():
        return {"srr_c": _describe(M.srr_c(run), "srr_c")}

    def activations():
        return {
            "mutual_information": _describe(M.mutual_information(run), "mutual_information"),
            "binarization": _describe(M.binarization(run), "binarization"),
        }

    def residuals():
        homogeneity = M.residual_homogeneity(run)
        return {
            "residual_cv": _describe(homogeneity["cv"], "residual_cv"),
            "residual_max_over_mean": _describe(homogeneity["max_over_mean"], "residual_max_over_mean"),
        }

    def scalars():
        ds = require_group(run, "scalars")
        out = {}
        for name, da in ds.data_vars.items():
            equation = "Eq. 7" if name == "test_error" else None
            out[str(name)] = _describe(da, str(name), equation, str(da.attrs.get("long_name") or name))
        return out

    recipes = {
        "gradient_stats": [gradient, adam],
        "activations": [activations],
        "residuals": [residuals],
        "scalars": [scalars],
    }
    lazy: dict[str, dict[str, Any]] = {}
    for group, makers in recipes.items():
        for make in makers:
            try:
                lazy.setdefault(group, {}).update(make())
            except MissingGroupError:
                continue
    return {group: values for group, values in lazy.items() if values}


def _phase_dataset(snr: xr.DataArray) -> tuple[xr.Dataset | None, str | None]:
    """The phase table of the whole-net SNR as a Dataset over ``phase`` (rows of ``PhaseTable.to_dict``)."""
    from pinnlog.analyzer.phases import detect_phases

    try:
        table = detect_phases(snr)
    except PinnlogError as exc:
        return None, f"phase detection failed: {exc}"
    rows = table.to_dict()["phases"]
    columns: dict[str, Any] = {
        "label": ("phase", np.array([r["label"] for r in rows], dtype=str)),
        "first_step": ("phase", np.array([r["first_step"] for r in rows], dtype=np.int64)),
        "last_step": ("phase", np.array([r["last_step"] for r in rows], dtype=np.int64)),
        "median_snr": ("phase", np.array([np.nan if r["median"] is None else r["median"] for r in rows], dtype=float)),
        "slope": ("phase", np.array([np.nan if r["slope"] is None else r["slope"] for r in rows], dtype=float)),
        "n_samples": ("phase", np.array([r["n_samples"] for r in rows], dtype=np.int64)),
    }
    ds = xr.Dataset(columns, coords={"phase": np.arange(len(rows))})
    notes = {
        "label": ("phase of training (paper Section 3)", "1"),
        "first_step": ("first captured step of the phase", "step"),
        "last_step": ("last captured step of the phase", "step"),
        "median_snr": ("median whole-net SNR over the phase", "1"),
        "slope": ("least-squares slope of log10 SNR against log10 step", "1"),
        "n_samples": ("captures in the phase", "1"),
    }
    for name, (long_name, units) in notes.items():
        ds[name].attrs.update(long_name=long_name, units=units, equation="Eq. 8" if name == "median_snr" else "none")
    ds.attrs["signal"] = "whole-net SNR (Eq. 8)"
    return ds, None


def run_curves(path: str | os.PathLike, *, progress: ProgressCallback | None = None) -> dict[str, xr.Dataset]:
    """Every curve the run's data allows, computed: ``{group: Dataset}`` (see the module docstring).

    Raises
    ------
    PinnlogError
        Not a run store, or a store with nothing to export.
    """
    import dask

    from pinnlog.analyzer.store.read import open_run

    progress = progress or (lambda description, done, total: None)
    progress("opening", 0, 1)
    run = open_run(path)
    lazy = _lazy_curves(run)
    if not lazy:
        raise ExportError(f"{path} holds no curve to export; record gradient statistics or rec.step(step, loss=...)")
    keys = [(group, name) for group, values in lazy.items() for name in values]
    progress("computing curves", 0, 1)
    computed = dask.compute(*(lazy[g][n] for g, n in keys))
    progress("computing curves", 1, 1)
    groups: dict[str, dict[str, xr.DataArray]] = {}
    for (group, name), value in zip(keys, computed, strict=True):
        groups.setdefault(group, {})[name] = value
    out = {group: xr.Dataset(values) for group, values in groups.items()}
    if "gradient_stats" in out:
        phases, note = _phase_dataset(out["gradient_stats"]["snr"])
        if phases is not None:
            out["phases"] = phases
        else:
            out["gradient_stats"].attrs["phases_note"] = note
    root = dict(run.attrs)
    for ds in out.values():
        ds.attrs.update(source=str(path), created=str(root.get("created", "")), pinnlog_format=int(root.get("pinnlog_format", 1)))
    return out


# -- writers ------------------------------------------------------------------------------------------


def _wide(ds: xr.Dataset) -> pd.DataFrame:
    """A Dataset over ``step`` (and ``layer``) as one row per step; per-layer columns are ``name/layer_name``."""
    columns: dict[str, Any] = {}
    for name, da in ds.data_vars.items():
        if "layer" in da.dims:
            labels = (
                [str(v) for v in np.asarray(da["layer_name"].values)] if "layer_name" in da.coords else list(da["layer"].values)
            )
            for i, label in enumerate(labels):
                columns[f"{name}/{label}"] = np.asarray(da.isel(layer=i).values)
        else:
            columns[str(name)] = np.asarray(da.values)
    index_dim = "phase" if "phase" in ds.dims else "step"
    frame = pd.DataFrame(columns, index=pd.Index(np.asarray(ds[index_dim].values), name=index_dim))
    return frame


def _column_notes(group: str, ds: xr.Dataset) -> list[dict[str, str]]:
    rows = []
    for name, da in ds.data_vars.items():
        layers = (
            [str(v) for v in np.asarray(da["layer_name"].values)] if "layer" in da.dims and "layer_name" in da.coords else [None]
        )
        for layer in layers:
            rows.append(
                {
                    "file": f"{group}.csv",
                    "column": f"{name}/{layer}" if layer else str(name),
                    "long_name": str(da.attrs.get("long_name", name)) + (f", {layer}" if layer else ""),
                    "units": str(da.attrs.get("units", "")),
                    "equation": str(da.attrs.get("equation", "none")),
                }
            )
    return rows


def _write_csv(curves: dict[str, xr.Dataset], folder: Path) -> list[Path]:
    notes = []
    for group, ds in curves.items():
        with open_new(folder / f"{group}.csv", "w") as f:
            _wide(ds).to_csv(f, lineterminator="\n")
        notes += _column_notes(group, ds)
    with open_new(folder / "columns.csv", "w") as f:
        pd.DataFrame(notes, columns=["file", "column", "long_name", "units", "equation"]).to_csv(
            f, index=False, lineterminator="\n"
        )
    return sorted(folder.iterdir())


def _check_netcdf() -> None:
    try:
        import netCDF4  # noqa: F401  (NetCDF groups need netCDF4; scipy's writer has none)
    except ImportError as exc:
        raise ExportError(f"writing NetCDF needs the netCDF4 package ({exc}); install pinnlog[netcdf]") from exc


def _write_netcdf(curves: dict[str, xr.Dataset], file: Path) -> None:
    tree = xr.DataTree.from_dict({f"/{group}": ds for group, ds in curves.items()})
    tree.attrs["title"] = "pinnlog curves"
    tree.attrs["source"] = next(iter(curves.values())).attrs.get("source", "")
    tree.to_netcdf(file, engine="netcdf4")


def _tensorboard_modules():
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise ExportError(
            f"writing TensorBoard event files needs the tensorboard package ({exc}); install pinnlog[tensorboard]"
        ) from exc
    return Event, Summary, EventFileWriter, text_pb


def tensorboard_tags(curves: dict[str, xr.Dataset]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (steps, values)}`` of every curve as TensorBoard shows it (NaN/inf points left out).

    Tags are ``group/name`` and ``group/name/layer_name`` for per-layer curves; the phase index at each
    captured step is ``phases/phase`` (it steps up at every phase boundary).
    """
    tags: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for group, ds in curves.items():
        if group == "phases":
            continue
        for name, da in ds.data_vars.items():
            parts = [da.isel(layer=i) for i in range(da.sizes["layer"])] if "layer" in da.dims else [da]
            for part in parts:
                layer = str(part["layer_name"].values) if "layer" in da.dims and "layer_name" in part.coords else None
                steps = np.asarray(part["step"].values, dtype=np.int64)
                values = np.asarray(part.values, dtype=float)
                ok = np.isfinite(values)
                tags[f"{group}/{name}" + (f"/{layer}" if layer else "")] = (steps[ok], values[ok])
    if "phases" in curves and "gradient_stats" in curves:
        steps = np.asarray(curves["gradient_stats"]["step"].values, dtype=np.int64)
        firsts = np.asarray(curves["phases"]["first_step"].values)
        tags["phases/phase"] = (steps, (np.searchsorted(firsts, steps, side="right") - 1).astype(float))
    return tags


def _phase_markdown(phases: xr.Dataset) -> str:
    rows = ["| phase | first step | last step | median SNR |", "|---|---|---|---|"]
    for i in range(phases.sizes["phase"]):
        p = phases.isel(phase=i)
        rows.append(f"| {p['label'].item()} | {int(p['first_step'])} | {int(p['last_step'])} | {float(p['median_snr']):.3g} |")
    return "\n".join(rows)


def _write_tensorboard(curves: dict[str, xr.Dataset], folder: Path, wall_start: float) -> None:
    Event, Summary, EventFileWriter, text_pb = _tensorboard_modules()
    writer = EventFileWriter(str(folder))
    try:
        for tag, (steps, values) in tensorboard_tags(curves).items():
            for step, value in zip(steps.tolist(), values.tolist()):
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
                writer.add_event(Event(wall_time=wall_start, step=int(step), summary=summary))
        if "phases" in curves:
            phases = curves["phases"]
            writer.add_event(Event(wall_time=wall_start, step=0, summary=text_pb("phases/table", _phase_markdown(phases))))
    finally:
        writer.close()


def default_export_path(path: str | os.PathLike, fmt: ExportFormat) -> Path:
    """``NAME_curves`` (csv), ``NAME.nc`` (netcdf) or ``NAME_tensorboard`` beside a local run; in the current folder for a URL."""
    from pinnlog.analyzer.report.build import run_label

    name = run_label(path) + {"csv": "_curves", "netcdf": ".nc", "tensorboard": "_tensorboard"}[ExportFormat(fmt).value]
    return (Path.cwd() if is_url(path) else Path(path).absolute().parent) / name


def export_run(
    path: str | os.PathLike,
    fmt: ExportFormat | str = ExportFormat.csv,
    out: str | os.PathLike | None = None,
    *,
    label: str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a run's curves and phase table as CSV, NetCDF or TensorBoard event files; return what was written.

    Parameters
    ----------
    path : str or path-like
        The run store.
    fmt : {"csv", "netcdf", "tensorboard"}
        ``csv``: a folder with one CSV per group (``gradient_stats.csv``, ``activations.csv``,
        ``residuals.csv``, ``scalars.csv``, ``phases.csv``) and ``columns.csv`` describing every column;
        ``netcdf``: one ``.nc`` file, one group per Dataset of :func:`run_curves`; ``tensorboard``: event
        files in ``out/LABEL/`` (point ``tensorboard --logdir out`` at it; several runs can share ``out``).
    out : path-like, optional
        Default :func:`default_export_path`.
    label : str, optional
        The run's name in TensorBoard (default: the store's name).
    progress : callable, optional
        ``progress(description, done, total)``: opening, computing the curves, writing.

    Raises
    ------
    PinnlogError
        Not a run store, nothing to export, an output that cannot be written, tensorboard not installed.
    """
    from pinnlog.analyzer.report.build import run_label

    try:
        fmt = ExportFormat(getattr(fmt, "value", fmt))
    except ValueError:
        raise ExportError(f"unknown export format {fmt!r}; use one of csv, netcdf, tensorboard") from None
    target = Path(out) if out is not None else default_export_path(path, fmt)
    check_output_path(target, directory=fmt is not ExportFormat.netcdf)  # before the work, not after it
    if fmt is ExportFormat.tensorboard:
        _tensorboard_modules()
    if fmt is ExportFormat.netcdf:
        _check_netcdf()
    curves = run_curves(path, progress=progress)
    (progress or (lambda *a: None))(f"writing {fmt.value}", 0, 1)
    if fmt is ExportFormat.csv:
        with staged_directory(
            target, ours=lambda names: "columns.csv" in names and all(n.endswith(".csv") for n in names)
        ) as stage:
            _write_csv(curves, stage)
    elif fmt is ExportFormat.netcdf:
        with staged_file(target) as staged:
            _write_netcdf(curves, staged)
    else:
        created = next(iter(curves.values())).attrs.get("created", "")
        try:
            wall_start = datetime.fromisoformat(created).timestamp()
        except ValueError:
            wall_start = 0.0
        run_dir = target / (label or run_label(path))
        check_output_path(run_dir)
        # the run's own folder is replaced whole when it holds only event files of an earlier export
        with staged_directory(run_dir, ours=lambda names: all(n.startswith("events.out.tfevents.") for n in names)) as stage:
            _write_tensorboard(curves, stage, wall_start)
        target = run_dir
    return target
