"""Figures that only a comparison of runs has: per-layer overlays and the steps-to-error chart.

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

__all__ = ["plot_layers_overlay", "plot_steps_to_error"]


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


def plot_steps_to_error(
    steps: Mapping[str, Mapping[float, int | None]], *, ax: Axes | None = None, colors: Mapping[str, Any] | None = None
) -> Axes:
    """Grouped bars: the first step at which each run's test error is at or below each threshold.

    ``steps`` is ``{run label: {threshold: step or None}}``; a threshold a run never reached gets no bar
    and a "not reached" mark at the bottom of its slot.
    """
    ax = _ax(ax)
    labels = [str(k) for k in steps]
    colors = colors or run_colors(labels)
    thresholds = sorted({float(t) for per_run in steps.values() for t in per_run}, reverse=True)
    width = 0.8 / max(len(labels), 1)
    reached = [s for per_run in steps.values() for s in per_run.values() if s]
    floor = 10 ** math.floor(math.log10(min(reached))) / 2 if reached else 1.0
    for j, label in enumerate(labels):
        per_run = {float(t): s for t, s in steps[label].items()}
        x = np.arange(len(thresholds)) + (j - (len(labels) - 1) / 2) * width
        heights = [per_run.get(t) for t in thresholds]
        shown = [h if h else np.nan for h in heights]
        bars = ax.bar(
            x,
            [h - floor if np.isfinite(h) else 0 for h in shown],
            width * 0.95,
            bottom=floor,
            color=colors[label],
            label=plain(label),
        )
        for xi, h, bar in zip(x, heights, bars, strict=True):
            if h:
                ax.text(
                    xi,
                    bar.get_y() + bar.get_height(),
                    f"{h:,}",
                    ha="center",
                    va="bottom",
                    fontsize="x-small",
                    rotation=90 if len(labels) > 2 else 0,
                )
            else:
                ax.text(
                    xi,
                    floor * 1.05,
                    "not reached",
                    ha="center",
                    va="bottom",
                    fontsize="x-small",
                    rotation=90,
                    color=colors[label],
                )
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(np.arange(len(thresholds)), [f"≤ {name}" for name in map(threshold_name, thresholds)])
    ax.set_xlabel("relative L2 test error")
    ax.set_ylabel("steps to reach it")
    ax.legend(fontsize="small")
    return ax
