"""Draw and save a report's figures: one PNG + SVG pair each, on two processes where that is cheap.

Drawing and saving is most of a report's time and is pure Python (matplotlib holds the GIL), so threads
would not help; on Linux, forked worker processes do (they start in milliseconds and inherit the loaded
modules). Each figure is composed, drawn and written by one worker from the runs' computed metric
outputs, which are pickled to it; the files and bytes are the same as when drawn in this process.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from pinnlog.analyzer.output import open_new, write_new
from pinnlog.analyzer.report.compose import FIGURES, Drawn, RunResult, Skipped, compose_one

__all__ = ["draw_figures", "drawing_processes", "write_figure"]

#: More than two processes rarely pay: a report has eight or nine figures of unequal cost.
MAX_PROCESSES = 2


def drawing_processes() -> int:
    """How many processes draw: up to two where ``fork`` is safe and cheap (Linux) and CPUs allow, else one."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(MAX_PROCESSES, len(os.sched_getaffinity(0))))


#: Largest magnitude drawn as it is. matplotlib's tick locators compute powers of ten past the view
#: limits, which overflow to inf (OverflowError) for data near 1e300; a diverged run reaches such values.
DRAWABLE_MAX = 1e200


def clip_to_drawable(figure) -> int:
    """Clip every curve's values to ``±DRAWABLE_MAX`` (log axes: ``[1/DRAWABLE_MAX, DRAWABLE_MAX]``) in place.

    Returns how many points were moved; NaN and inf are left as they are (matplotlib does not draw them).
    A diverged run is real data: its curve runs along the edge of the plot instead of failing the report.
    """
    moved = 0
    for ax in figure.axes:
        changed = False
        for line in ax.get_lines():
            for axis, get, set_ in (("x", line.get_xdata, line.set_xdata), ("y", line.get_ydata, line.set_ydata)):
                try:
                    values = np.asarray(get(), dtype=float)
                except (TypeError, ValueError):  # dates or categories: nothing to clip
                    continue
                log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
                low, high = (1 / DRAWABLE_MAX, DRAWABLE_MAX) if log else (-DRAWABLE_MAX, DRAWABLE_MAX)
                finite = np.isfinite(values)
                outside = finite & ((values > high) | (values < low) & (~log | (values > 0)))
                if outside.any():
                    set_(np.where(outside, np.clip(values, low, high), values))
                    moved += int(outside.sum())
                    changed = True
        if changed:
            ax.relim()
            ax.autoscale_view()
    return moved


def write_figure(drawn: Drawn, out: Path) -> tuple[dict, bytes]:
    """Save ``NAME.png`` and ``NAME.svg``; return the summary entry and the PNG bytes (for the page)."""
    if clip_to_drawable(drawn.figure):
        drawn.notes.append(
            f"values beyond {DRAWABLE_MAX:.0e} in magnitude (a diverged run) are drawn at the edge, {DRAWABLE_MAX:.0e}; "
            "summary.json and the exports hold them as recorded"
        )
    buffer = io.BytesIO()
    with np.errstate(over="ignore"):  # log-axis transforms of huge values overflow harmlessly to inf
        drawn.figure.savefig(buffer, format="png", dpi=110)
    png = buffer.getvalue()
    write_new(out / f"{drawn.name}.png", png)
    drawn.figure.set_layout_engine("none")  # keep the layout the PNG got: the SVG is the same figure, sooner
    with open_new(out / f"{drawn.name}.svg") as svg, np.errstate(over="ignore"):
        drawn.figure.savefig(svg, format="svg")
    entry = {
        "name": drawn.name,
        "title": drawn.title,
        "png": f"{drawn.name}.png",
        "svg": f"{drawn.name}.svg",
        "notes": list(drawn.notes),
    }
    return entry, png


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _draw_one(runs: Sequence[RunResult], name: str, out: Path) -> tuple[dict | None, bytes | None, dict | None]:
    """``(entry, png, None)`` for a drawn figure, ``(None, None, skipped)`` for a skipped one, else Nones."""
    with np.errstate(over="ignore"):  # a diverged run's 1e300s overflow in log-axis transforms: drawn clipped
        item = compose_one(runs, name)
    if item is None:
        return None, None, None
    if isinstance(item, Skipped):
        return None, None, {"figure": item.figure, "reason": item.reason}
    entry, png = write_figure(item, out)
    return entry, png, None


def draw_figures(
    runs: Sequence[RunResult], out: Path, progress: Callable[[str, int, int], None], *, processes: int | None = None
) -> tuple[list[dict], dict[str, bytes], list[dict]]:
    """Draw every figure of :data:`FIGURES` the runs allow and write it to ``out``.

    Returns the ``figures`` entries and ``skipped`` entries of ``summary.json`` (report order) and
    ``{name: PNG bytes}``. ``processes`` defaults to :func:`drawing_processes`.
    """
    names = list(FIGURES)
    processes = drawing_processes() if processes is None else processes
    done: dict[str, Any] = {}
    progress("drawing figures", 0, len(names))
    if processes > 1:
        context = multiprocessing.get_context("fork")
        # Ctrl-C reaches the whole process group: the workers leave it to this process, which says it once
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_ignore_interrupts) as pool:
            futures = {pool.submit(_draw_one, runs, name, out): name for name in names}
            try:
                for count, future in enumerate(as_completed(futures), start=1):
                    done[futures[future]] = future.result()
                    progress("drawing figures", count, len(names))
            except BaseException:  # Ctrl-C or a failed figure: draw nothing more
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    else:
        for count, name in enumerate(names, start=1):
            done[name] = _draw_one(runs, name, out)
            progress("drawing figures", count, len(names))
    figures, pngs, skipped = [], {}, []
    for name in names:
        entry, png, skip = done[name]
        if entry is not None:
            figures.append(entry)
            pngs[name] = png
        if skip is not None:
            skipped.append(skip)
    return figures, pngs, skipped
