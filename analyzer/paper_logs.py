"""Convert the paper authors' text logs into a format-1 run store (torch-free).

The authors' training scripts (soanagno/diffusion-equilibrium) log, every few iterations, one CSV row
per weight matrix, ``Epoch,Layer,Mean,Std,L2``:

- ``grad_stats2.txt``: ‖μ_l‖, ‖σ_l‖ of that matrix (population std over the batches), ‖w_l‖;
- ``grad_stats.txt``: the same but whole-net ‖μ‖, ‖σ‖ (repeated on every row of a step);
- ``grad_rms.txt``: whole-net ‖μ‖ and ‖rms‖;
- ``losses.txt``: whitespace columns ``iteration relative_L2_test_error loss``.

Norms over a concatenation are roots of sums of squares, so the per-layer file alone gives every
reduction of ``docs/format.md`` for weights-only statistics: ``sum_mu2 = Mean²``, ``sum_sigma2 = Std²``,
``sum_rms2 = Mean² + Std²``, ``sum_w2 = L2²``. The whole-net files are only cross-checked (any of them
may stop early: a log cut short keeps the steps it has); the result of the check is written into the
store's ``imported_from`` attribute.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pinnlog.analyzer import __version__
from pinnlog.analyzer.errors import PaperLogsError, PaperLogsWarning, WidthsMismatchError

__all__ = [
    "PAPER_WIDTHS",
    "NormLog",
    "PaperLogsError",
    "WidthsMismatchError",
    "import_paper_logs",
    "read_losses",
    "read_norm_log",
]

#: Layer widths of the paper's network: MLP [2] + [128] x 6 + [1], tanh.
PAPER_WIDTHS = (2, 128, 128, 128, 128, 128, 128, 1)
PER_LAYER_LOG = "grad_stats2.txt"
WHOLE_NET_LOG = "grad_stats.txt"
RMS_LOG = "grad_rms.txt"
LOSSES_LOG = "losses.txt"
HEADER = ["Epoch", "Layer", "Mean", "Std", "L2"]
#: The paper's K: 100 fixed batches of 256 collocation points.
PAPER_N_BATCHES = 100
ROWS_PER_WRITE = 512


@dataclass(frozen=True)
class NormLog:
    """One ``Epoch,Layer,Mean,Std,L2`` log as arrays over (step, tensor); only complete steps are kept."""

    steps: np.ndarray  # (n,) int64
    tensors: list[str]  # tensor names in file order, e.g. "layers.layer_0.weight"
    mean: np.ndarray  # (n, n_tensors) float64
    std: np.ndarray
    l2: np.ndarray
    n_dropped: int  # rows that were malformed, or steps missing some tensor (a log cut short)


def read_norm_log(path: str | os.PathLike) -> NormLog:
    """Read one of the authors' norm logs, tolerating a truncated tail.

    Malformed rows (a line cut in the middle) are skipped, duplicates of (step, tensor) keep the
    last row, and steps that lack a row for some tensor are dropped, so a log that stops early
    yields exactly the steps it holds in full.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, on_bad_lines="skip", dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise PaperLogsError(f"{path} is empty; expected a CSV with header {','.join(HEADER)}") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:  # a binary file, or text that is not CSV at all
        raise PaperLogsError(f"{path} is not a text CSV log ({type(exc).__name__}); is this one of the authors' logs?") from None
    if list(frame.columns) != HEADER:
        found = ",".join(map(str, frame.columns))[:80]
        raise PaperLogsError(
            f"{path}: expected the header {','.join(HEADER)}, found {found!r}; is this one of the authors' logs?"
        )
    n_rows = len(frame)
    numbers = frame[["Epoch", "Mean", "Std", "L2"]].apply(pd.to_numeric, errors="coerce")
    numbers["Layer"] = frame["Layer"]
    numbers = numbers.dropna().drop_duplicates(["Epoch", "Layer"], keep="last")
    if numbers.empty:
        raise PaperLogsError(f"{path} holds no complete row; expected lines like '2,layers.layer_0.weight,0.98,0.23,2.04'")
    tensors = list(dict.fromkeys(numbers["Layer"]))
    wide = numbers.pivot(index="Epoch", columns="Layer", values=["Mean", "Std", "L2"]).sort_index()
    complete = wide.notna().all(axis=1)
    wide = wide[complete]
    steps = wide.index.to_numpy()
    if not np.all(steps == np.round(steps)) or np.any(steps < 0):
        raise PaperLogsError(f"{path}: the Epoch column holds values that are not non-negative integers")
    n_kept = int(complete.sum()) * len(tensors)
    return NormLog(
        steps=steps.astype(np.int64),
        tensors=tensors,
        mean=wide["Mean"][tensors].to_numpy(np.float64),
        std=wide["Std"][tensors].to_numpy(np.float64),
        l2=wide["L2"][tensors].to_numpy(np.float64),
        n_dropped=n_rows - n_kept,
    )


def read_losses(path: str | os.PathLike) -> pd.DataFrame:
    """``losses.txt`` as a frame with int ``step`` and float ``test_error``, ``loss``; malformed lines skipped."""
    try:
        frame = pd.read_csv(
            path, sep=r"\s+", header=None, names=["step", "test_error", "loss"], on_bad_lines="skip", dtype=str, engine="python"
        )
    except pd.errors.EmptyDataError:
        raise PaperLogsError(f"{path} is empty; expected lines 'step test_error loss'") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PaperLogsError(f"{path} is not a text log ({type(exc).__name__}); expected lines 'step test_error loss'") from None
    frame = frame.apply(pd.to_numeric, errors="coerce").dropna()
    frame = frame.drop_duplicates("step", keep="last").sort_values("step")
    frame["step"] = frame["step"].round().astype(np.int64)
    return frame.reset_index(drop=True)


def _layout(tensors: list[str], widths: Sequence[int]) -> tuple[list[dict], list[dict]]:
    """Format-1 ``layout`` and ``layers`` attributes for the weight matrices of an MLP of ``widths``."""
    layout, layers, offset = [], [], 0
    for index, name in enumerate(tensors):
        shape = [int(widths[index + 1]), int(widths[index])]  # nn.Linear.weight is (out, in)
        module = name.rsplit(".", 1)[0] if name.endswith(".weight") else name
        numel = shape[0] * shape[1]
        layout.append(
            {"name": name, "module": module, "shape": shape, "numel": numel, "offset": offset, "layer": index, "is_bias": False}
        )
        layers.append({"index": index, "name": f"layer_{index}", "module": module, "width": shape[0]})
        offset += numel
    return layout, layers


def _max_relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    gap = gap[np.isfinite(gap)]
    return float(gap.max()) if gap.size else 0.0


def _gradient_stats(per_layer: NormLog) -> xr.Dataset:
    """The ``gradient_stats`` group of the store, in memory: the format-1 reductions of the norms."""
    with np.errstate(over="ignore"):  # a norm beyond ~1e154 squares to inf: stored as inf, no numpy warning line
        mu2, sigma2 = per_layer.mean**2, per_layer.std**2
    n = len(per_layer.tensors)
    return xr.Dataset(
        {
            "sum_mu2": (("step", "tensor"), mu2),
            "sum_sigma2": (("step", "tensor"), sigma2),
            "sum_rms2": (("step", "tensor"), mu2 + sigma2),
            "sum_w2": (("step", "tensor"), per_layer.l2**2),
            "layer": ("tensor", np.arange(n, dtype=np.int32)),
            "is_bias": ("tensor", np.zeros(n, dtype=bool)),
        },
        coords={"step": per_layer.steps},
    )


def _cross_check(stats: xr.Dataset, src: Path) -> tuple[list[str], float]:
    """Compare the whole-net logs with the norms of the per-layer rows; a sentence per file and the worst gap."""
    from pinnlog.analyzer.metrics import gradient_norms

    norms = gradient_norms(stats)
    steps = stats["step"].values
    notes, worst = [], 0.0
    for name, denominator in ((WHOLE_NET_LOG, "std_norm"), (RMS_LOG, "rms_norm")):
        if not (src / name).is_file():
            notes.append(f"{name} absent")
            continue
        log = read_norm_log(src / name)
        common, mine, theirs = np.intersect1d(steps, log.steps, return_indices=True)
        if common.size == 0:
            notes.append(f"{name} shares no step with {PER_LAYER_LOG}")
            continue
        gap = max(
            _max_relative_gap(norms["mean_norm"].values[mine], log.mean[theirs, 0]),
            _max_relative_gap(norms[denominator].values[mine], log.std[theirs, 0]),
        )
        worst = max(worst, gap)
        span = f"steps {int(common[0]):,}..{int(common[-1]):,}"
        cut = " (the log stops early)" if common[-1] < steps[-1] else ""
        notes.append(
            f"{name}: whole-net columns agree with the per-layer rows to {gap:.1e} relative over {common.size} {span}{cut}"
        )
    return notes, worst


def import_paper_logs(
    src_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    widths: Sequence[int] = PAPER_WIDTHS,
    n_batches: int = PAPER_N_BATCHES,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path | str | os.PathLike:
    """Convert one run of the authors' text logs into a format-1 store.

    Parameters
    ----------
    src_dir : path-like
        Directory with ``grad_stats2.txt`` (required), ``losses.txt``, ``grad_stats.txt`` and
        ``grad_rms.txt`` (optional, cross-checked only).
    out_path : path-like or URL
        The store to write (``run.zarr``).
    overwrite : bool
        Replace an existing store at ``out_path``.
    widths : sequence of int
        Layer widths of the MLP that wrote the logs (input, hidden..., output); the paper's
        ``[2] + [128] x 6 + [1]`` by default. Gives each weight matrix its ``numel``.
    n_batches : int
        K, the number of fixed batches the statistics were taken over (the paper: 100).
    progress : callable, optional
        Called as ``progress(description, done, total)`` as the work advances (the CLI passes a
        rich progress bar that shows itself after a second).

    Returns
    -------
    pathlib.Path, or ``out_path`` as given
        The local store directory; a URL ``out_path`` comes back unchanged.

    Notes
    -----
    ``gradient_stats`` holds one tensor per weight matrix (``is_bias`` false): ``sum_mu2 = Mean²``,
    ``sum_sigma2 = Std²``, ``sum_rms2 = Mean² + Std²`` and ``sum_w2 = L2²`` from ``grad_stats2.txt``,
    so SNR (Eq. 8), SRR_B (Eq. 11/17) and their per-layer forms follow exactly. ``scalars`` holds
    ``test_error`` and ``loss`` from ``losses.txt`` (``wall_time`` is NaN: the logs do not have it).
    """
    from pinnlog.analyzer.store.location import locate
    from pinnlog.analyzer.store.write import RunWriter

    src = Path(src_dir)
    if not src.is_dir():
        raise PaperLogsError(f"{src}: no such directory; pass the folder that holds {PER_LAYER_LOG} and {LOSSES_LOG}")
    if not (src / PER_LAYER_LOG).is_file():
        raise PaperLogsError(f"{src} has no {PER_LAYER_LOG} (the per-layer norms); pass a folder of the authors' logs")
    local_out = locate(out_path).local
    if local_out is not None and local_out.exists() and not overwrite:
        raise PaperLogsError(f"{out_path} already exists; pass overwrite=True or choose another output")
    if progress is not None:
        progress(f"reading {src}", 0, 1)
    per_layer = read_norm_log(src / PER_LAYER_LOG)
    n_tensors = len(per_layer.tensors)
    if n_tensors != len(widths) - 1:
        # the logs hold norms only: the number of weight matrices is known, their shapes are not
        raise WidthsMismatchError(
            f"{src / PER_LAYER_LOG} has {n_tensors} weight matrices but widths={list(widths)} describe {len(widths) - 1}; "
            f"pass widths= with the {n_tensors + 1} layer widths (input, hidden..., output) of the network that wrote the logs",
            n_tensors=n_tensors,
            widths=list(widths),
        )
    losses = read_losses(src / LOSSES_LOG) if (src / LOSSES_LOG).is_file() else None
    stats = _gradient_stats(per_layer)
    checks, worst = _cross_check(stats, src)
    if worst > 1e-4:
        warnings.warn(
            f"{src}: the whole-net logs disagree with the per-layer rows by up to {worst:.1e} relative; "
            "the per-layer rows were imported",
            PaperLogsWarning,
            stacklevel=2,
        )
    layout, layers = _layout(per_layer.tensors, widths)
    dropped = f", {per_layer.n_dropped} incomplete rows skipped" if per_layer.n_dropped else ""
    if losses is not None:
        scalars_note = f"{LOSSES_LOG} ({len(losses)} rows) -> scalars test_error, loss"
    else:
        scalars_note = f"{LOSSES_LOG} absent"
    imported_from = (
        f"the paper authors' text logs in {src.resolve()}: "
        f"{PER_LAYER_LOG} ({per_layer.steps.size} steps x {n_tensors} weight matrices{dropped}) -> gradient_stats "
        f"(sum_mu2 = Mean^2, sum_sigma2 = Std^2, sum_rms2 = their sum, sum_w2 = L2^2; weights only, no biases); "
        f"{scalars_note}; " + "; ".join(checks)
    )
    attrs = {
        "pinnlog_version": __version__,
        "device": "unknown",
        "model": "MLP " + " -> ".join(str(w) for w in widths) + " (imported: weight-matrix norms only)",
        "optimizer": {"name": "Adam", "hyperparameters": {}},
        "n_batches": int(n_batches),
        "shared_loss": True,
        "config": {"source": "paper_logs", "widths": [int(w) for w in widths], "source_dir": src.name},
        "layout": layout,
        "layers": layers,
        "imported_from": imported_from,
    }
    rows = {"step": per_layer.steps, **{v: stats[v].values for v in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2")}}
    n_rows = per_layer.steps.size
    store = RunWriter(out_path, attrs=attrs, overwrite=overwrite)
    try:
        store.set_static(
            "gradient_stats",
            {
                "numel": np.array([t["numel"] for t in layout], dtype=np.int64),
                "layer": stats["layer"].values,
                "is_bias": stats["is_bias"].values,
            },
        )
        for start in range(0, n_rows, ROWS_PER_WRITE):
            store.append("gradient_stats", {k: v[start : start + ROWS_PER_WRITE] for k, v in rows.items()})
            if progress is not None:
                progress(f"writing {out_path}", min(start + ROWS_PER_WRITE, n_rows), n_rows)
        if losses is not None and len(losses):
            store.append(
                "scalars",
                {
                    "step": losses["step"].to_numpy(np.int64),
                    "wall_time": np.full(len(losses), np.nan),
                    "test_error": losses["test_error"].to_numpy(np.float64),
                    "loss": losses["loss"].to_numpy(np.float64),
                },
            )
    except BaseException:
        store.close(status="interrupted")
        raise
    store.close(status="complete")
    return local_out if local_out is not None else out_path
