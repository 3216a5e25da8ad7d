"""Progress bars for the command line: rich, on stderr, shown only for work that lasts over a second.

A :class:`DelayedProgress` is the ``progress(description, done, total)`` callback that
``analyze_run``/``compare_runs`` accept. It records every update from the start but opens the live
display only once ``delay`` seconds have passed, so quick commands print no bar at all.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["DelayedProgress"]


class DelayedProgress:
    """``with DelayedProgress(console) as progress: analyze_run(..., progress=progress)``.

    Parameters
    ----------
    console : rich.console.Console
        Where the bars go (the CLI passes its stderr console, keeping stdout for results).
    delay : float
        Seconds of work before the bars appear.
    enabled : bool
        False (``--quiet``) makes every call a no-op.
    """

    def __init__(self, console: Console, *, delay: float = 1.0, enabled: bool = True):
        self.enabled = enabled
        self.delay = delay
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.started = False

    def _start(self) -> None:
        with self._lock:
            if self._timer is not None and not self.started:
                self._progress.start()
                self.started = True

    def __enter__(self) -> DelayedProgress:
        # Bars are for a person at a terminal; in a log or a pipe they would only leave blank lines behind.
        if self.enabled and self._progress.console.is_terminal:
            self._timer = threading.Timer(self.delay, self._start)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __call__(self, description: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            task = self._tasks.get(description)
            if task is None:
                for other in self._tasks.values():  # a new stage means the previous ones are over
                    t = self._progress.tasks[other]
                    self._progress.update(other, completed=t.total)
                task = self._tasks[description] = self._progress.add_task(description, total=max(total, 1))
            self._progress.update(task, completed=min(done, max(total, 1)), total=max(total, 1))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.started:
                self._progress.stop()
                self.started = False
