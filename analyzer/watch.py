"""Keep a run's report up to date while the run is being recorded (``pinnlog watch``).

Each refresh reads the store's metadata (``status`` and every group's ``n_committed``); when either
changed since the last refresh it rewrites the report (``analyze_run``) from the committed prefix, so a
long run can be followed from its figures and ``summary.json``. A reader never takes a lock and never
writes into the store: the writer is never blocked. Watching stops after the refresh that first sees
``status`` "complete" or "interrupted": that last report covers the whole run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pinnlog.analyzer.errors import EmptyRunError, WatchArgumentError
from pinnlog.analyzer.store.guards import guarded
from pinnlog.analyzer.store.read import group_sizes, open_store_group, read_root_attrs

__all__ = ["DEFAULT_EVERY", "Refresh", "WatchArgumentError", "watch_run"]

DEFAULT_EVERY = 30.0
FINISHED = ("complete", "interrupted")


@dataclass
class Refresh:
    """One look at the run: its ``status``, committed rows per group, and the report written (None: not yet)."""

    status: str
    committed: dict[str, int]
    report: object | None  # pinnlog.analyzer.report.Report
    waiting_for: str | None = None  # why there is no report yet (nothing committed, nothing to draw)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def phase(self) -> str | None:
        """The phase the run is in, from this refresh's report: ``"total diffusion since step 12,300"``."""
        runs = getattr(self.report, "summary", {}).get("runs") if self.report is not None else None
        phases = runs[0].get("phases") if runs else None
        if not phases:
            return None
        last = phases[-1]
        return f"{last['label']} since step {last['first_step']:,}"


def _look(path) -> tuple[str, dict[str, int]]:
    """``status`` and ``{group: n_committed}``, from metadata only (cheap on any store size)."""
    root = open_store_group(path)
    attrs = read_root_attrs(root, path)
    return str(attrs.get("status", "recording")), guarded(path, "the list of groups", group_sizes, root, path)


def watch_run(
    path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    every: float = DEFAULT_EVERY,
    smooth: int | None = None,
    scheduler: str | None = None,
    on_refresh: Callable[[Refresh], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    once: bool = False,
):
    """Rewrite the report of ``path`` as its recording advances; return the last report when it stops.

    Parameters
    ----------
    path : str or path-like
        The run store being written (directory or URL). It must exist.
    out_dir : path-like, optional
        Where the report goes (default: as ``analyze_run``, ``NAME_report`` beside the run).
    every : float
        Seconds from the start of one refresh to the next (a refresh that takes longer is followed
        at once). A refresh that finds nothing new since the last report writes nothing.
    smooth, scheduler
        As for :func:`pinnlog.analyzer.report.analyze_run`.
    on_refresh : callable, optional
        Called with a :class:`Refresh` after every look that found something new.
    sleep : callable
        How to wait (tests pass a fake).
    once : bool
        Look once, write that report, and return, whether or not the run has finished
        (``pinnlog watch --once``: a cron job or a script that refreshes the report itself).

    Returns
    -------
    Report or None
        The report of the whole run (None if it never had anything to draw).

    Raises
    ------
    PinnlogError
        ``path`` is not a run store, an option is wrong, or the report cannot be written.
    """
    from pinnlog.analyzer.report import analyze_run, default_out_dir

    if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
        raise WatchArgumentError(f"--every must be a positive number of seconds, got {every!r}")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(path)
    last_seen = None
    report, waiting = None, None
    while True:
        started = time.monotonic()
        status, committed = _look(path)  # status first: a "complete" seen here is covered by the report below
        if (status, committed) != last_seen:
            last_seen = (status, committed)
            refresh = Refresh(status, dict(committed), None)
            try:
                report = analyze_run(path, out_dir, smooth=smooth, scheduler=scheduler)
                refresh.report = report
            except EmptyRunError as exc:  # nothing committed (or nothing drawable) yet: look again later
                refresh.waiting_for, waiting = str(exc), exc
            if on_refresh is not None:
                on_refresh(refresh)
        if status in FINISHED or once:
            if report is None and waiting is not None:
                raise waiting  # the run ended with nothing to draw: the same one-line error as analyze
            return report
        sleep(max(0.0, every - (time.monotonic() - started)))
