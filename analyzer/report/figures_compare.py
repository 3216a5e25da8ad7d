"""Figures that only a comparison of runs has: per-layer overlays, the steps-to-error chart and the
training-dynamics story of the paper's Figs. 6-7.

Like :mod:`pinnlog.analyzer.report.figures`, these take metric outputs (``{label: DataArray}``) and
never compute a quantity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from pinnlog.analyzer.report.figures import (
    PERCENT_FORMATTER,
    _ax,
    _line,
    _log_axes,
    layer_labels,
    mark_saturation,
    new_figure,
    plain,
    run_colors,
    shade_phases,
)
from pinnlog.analyzer.report.summary import threshold_name

__all__ = ["plot_dynamics", "plot_layers_overlay", "plot_steps_to_error"]


def plot_layers_overlay(
    values: Mapping[str, xr.DataArray],
    *,
    ylabel: str,
    logy: bool = True,
    phases: Any = None,
    colors: Mapping[str, Any] | None = None,
    percent: bool = False,
    max_cols: int = 4,
) -> Figure:
    """One panel per layer of a ``(step, layer)`` metric, each run in its own colour.

    Layers are matched by position (``layer`` index); a run with fewer layers leaves the extra panels to
    the others. Returns the ``Figure`` (its Axes are ``fig.axes``, one per layer, in layer order).
    """
    values = {str(k): v for k, v in values.items() if v is not None}
    colors = colors or run_colors(list(values))
    n_layers = max((v.sizes["layer"] for v in values.values()), default=0)
    ncols = max(1, min(max_cols, n_layers))
    nrows = max(1, math.ceil(n_layers / ncols))
    fig, axes = new_figure(ncols, nrows, width=3.6, height=2.9)
    flat = list(axes.ravel())
    for i in range(n_layers):
        ax = flat[i]
        title = None
        for label, da in values.items():
            if i < da.sizes["layer"]:
                _line(ax, da.isel(layer=i), color=colors[label], lw=1.1, label=plain(label))
                title = title or layer_labels(da)[i]
        _log_axes(ax, logy=logy)
        ax.set_title(plain(title), fontsize="small")
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
        if percent:
            ax.yaxis.set_major_formatter(PERCENT_FORMATTER)
        bounded = [da for da in values.values() if da.attrs.get("n_samples") and i < da.sizes["layer"]]
        if bounded:  # mutual information: 0 .. log2 N bits, the bound drawn (named in the first panel)
            mark_saturation(ax, bounded[0].isel(layer=i), label=i == 0)
        shade_phases(ax, phases, colors=colors)
    for ax in flat[n_layers:]:
        ax.set_visible(False)
    if n_layers:
        flat[0].legend(fontsize="x-small")
    return fig


def _threshold_label(key: Any) -> str:
    return threshold_name(float(key)) if isinstance(key, (int, float)) else str(key)


def plot_steps_to_error(
    steps: Mapping[str, Mapping[Any, int | None]], *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None
) -> Axes:
    """Grouped bars: the first step at which each run's test error is at or below each threshold.

    ``steps`` is ``{run label: {threshold: step or None}}``; a threshold is a number (0.1 is written
    "10%") or already a name ("19.8% (vanilla's best)"); numbers are drawn highest first, names in the
    order given. A threshold a run never reached gets no bar and a "not reached" mark at the bottom of
    its slot; thresholds no run reached are left out, and when none is left the panel says so instead of
    showing empty axes.
    """
    ax = _ax(ax)
    labels = [str(k) for k in steps]
    colors = colors or run_colors(labels)
    keys: list[Any] = []
    for per_run in steps.values():
        keys += [k for k in per_run if k not in keys]
    if all(isinstance(k, (int, float)) for k in keys):
        keys = sorted(keys, key=float, reverse=True)
    keys = [k for k in keys if any(per_run.get(k) is not None for per_run in steps.values())]
    if not keys:
        ax.text(0.5, 0.5, "no run reached any of these test errors", transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        return ax
    width = 0.8 / max(len(labels), 1)
    reached = [step for per_run in steps.values() for k in keys if (step := per_run.get(k))]
    floor = 10 ** math.floor(math.log10(min(reached))) / 2 if reached else 0.5
    for j, label in enumerate(labels):
        per_run = steps[label]
        x = np.arange(len(keys)) + (j - (len(labels) - 1) / 2) * width
        heights = [per_run.get(k) for k in keys]
        bars = ax.bar(
            x,
            [max(h, floor) - floor if h is not None else 0 for h in heights],
            width * 0.95,
            bottom=floor,
            color=colors[label],
            label=plain(label),
        )
        for xi, h, bar in zip(x, heights, bars, strict=True):
            text, y, kw = (
                (f"{h:,}", bar.get_y() + bar.get_height(), {})
                if h is not None
                else ("not reached", floor * 1.05, {"color": colors[label]})
            )
            ax.text(
                xi,
                y,
                text,
                ha="center",
                va="bottom",
                fontsize="x-small",
                rotation=90 if h is None or len(labels) > 2 else 0,
                **kw,
            )
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(np.arange(len(keys)), [f"≤ {_threshold_label(k)}" for k in keys], fontsize="small")
    ax.set_xlabel("relative L2 test error")
    ax.set_ylabel("steps to reach it")
    ax.legend(fontsize="small")
    return ax


def plot_dynamics(
    snr: Mapping[str, xr.DataArray],
    test_error: Mapping[str, xr.DataArray],
    *,
    homogeneity: Mapping[str, xr.Dataset] | None = None,
    rba_weight: Mapping[str, xr.Dataset] | None = None,
    phases: Any = None,
    level: tuple[float, str] | None = None,
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """The paper's training-dynamics figure (Figs. 6-7) for several runs, on one step axis.

    Rows: a) the SNR (Eq 8), b) the relative L2 test error with the ``level`` (threshold, name) the
    headline uses, c) the dispersion of the residuals std/mean |r| (Eq 20), d) the RBA weights λ
    (Eq 28): their mean over the samples (solid) between their smallest and largest (band). Rows whose
    data no run has are left out; phase onsets are dashed lines in each run's colour.
    """
    homogeneity = {k: v for k, v in (homogeneity or {}).items() if v is not None}
    rba_weight = {k: v for k, v in (rba_weight or {}).items() if v is not None}
    labels = list(dict.fromkeys([*snr, *test_error, *homogeneity, *rba_weight]))
    colors = colors or run_colors(labels)
    rows = [name for name, have in (("snr", snr), ("error", test_error), ("residual", homogeneity), ("rba", rba_weight)) if have]
    fig = Figure(figsize=(7.5, 2.3 * max(len(rows), 1) + 0.4), layout="constrained")
    axes = fig.subplots(max(len(rows), 1), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, row) in enumerate(zip(axes, rows, strict=False)):
        letter = "abcd"[i]
        if row == "snr":
            for label, da in snr.items():
                _line(ax, da, color=colors[label], lw=1.2, label=plain(label))
            ax.axhline(1.0, color="0.4", ls=":", lw=1.0)
            _log_axes(ax)
            ax.set_ylabel("SNR")
            ax.set_title(f"{letter}) SNR ‖μ‖/‖σ‖ (Eq 8)", loc="left", fontsize="medium")
        elif row == "error":
            for label, da in test_error.items():
                _line(ax, da, color=colors[label], lw=1.1, label=plain(label))
            if level is not None:
                ax.axhline(level[0], color="0.3", ls=":", lw=1.0)
            _log_axes(ax)
            ax.set_ylabel("relative L2")
            title = f"{letter}) test error (Eq 7)" + (f"; dotted: {level[1]}" if level is not None else "")
            ax.set_title(plain(title), loc="left", fontsize="medium")
        elif row == "residual":
            for label, ds in homogeneity.items():
                _line(ax, ds["cv"], color=colors[label], lw=1.2, label=plain(label))
            _log_axes(ax)
            ax.set_ylabel("std/mean |r|")
            ax.set_title(f"{letter}) residual dispersion (0 = homogeneous, Eq 20)", loc="left", fontsize="medium")
        else:
            for label, ds in rba_weight.items():
                da = ds["mean"].dropna("step")
                da = da.isel(step=np.flatnonzero(np.asarray(da["step"].values) > 0))
                low = ds["min"].sel(step=da["step"])
                high = ds["max"].sel(step=da["step"])
                x = np.asarray(da["step"].values)
                ax.fill_between(
                    x, np.asarray(low.values, float), np.asarray(high.values, float), color=colors[label], alpha=0.2, lw=0
                )
                _line(ax, ds["mean"], color=colors[label], lw=1.2, label=plain(f"{label}: mean λ"))
            _log_axes(ax, logy=False)
            ax.set_ylabel("RBA weight λ")
            ax.set_title(f"{letter}) RBA weights (Eq 28): mean, band from min to max", loc="left", fontsize="medium")
        shade_phases(ax, phases, colors=colors)
        if i < len(rows) - 1:
            ax.set_xlabel("")
        handles, _names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize="x-small", loc="best")
    if not rows:
        axes[0].text(0.5, 0.5, "no SNR, test error or residuals recorded", transform=axes[0].transAxes, ha="center")
    return fig
