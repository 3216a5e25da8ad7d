"""What every capture is: *when* it runs apart from *what* it computes, and the named rows it returns.

The model is Cockpit's quantities (f-dangel/cockpit, ``cockpit/quantities/quantity.py``), which keep
``should_compute(step)`` apart from ``compute(...)``. A capture here returns :class:`Rows`: the store
group they go to and ``{variable name: values}``, so the names travel with the values to the store and
neither the recorder's dispatch nor the writer knows any variable name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinnlog.recorder.schedules import Schedule

__all__ = ["Capture", "Rows", "merge_rows"]


@dataclass
class Rows:
    """One step's values for one group of the store.

    Attributes
    ----------
    group : str
        A group of docs/format.md (``gradient_stats``, ``residuals`` ...).
    values : dict
        ``{variable: values}``, each with a leading axis of one row (tensors stay on the device until
        the recorder hands them over).
    dims : dict
        Dimension names of variables that format 1 does not list (one activation array per layer).
    finite : tuple of str
        Variables whose NaN/Inf the writer reports once (a diverging run), by name.
    finite_mask : numpy.ndarray of bool, optional
        The entries of the last axis of the ``finite`` variables that count (frozen tensors are NaN by design).
    """

    group: str
    values: dict[str, Any]
    dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    finite: tuple[str, ...] = ()
    finite_mask: Any = None


def merge_rows(rows: Sequence[Rows]) -> list[Rows]:
    """Rows of the same group (one step) as one row: several captures fill ``gradient_stats`` together.

    Groups keep the order in which they first appear.
    """
    merged: dict[str, Rows] = {}
    for r in rows:
        if r.group not in merged:
            merged[r.group] = Rows(r.group, dict(r.values), dict(r.dims), tuple(r.finite), r.finite_mask)
            continue
        into = merged[r.group]
        into.values.update(r.values)
        into.dims.update(r.dims)
        into.finite += tuple(n for n in r.finite if n not in into.finite)
        if r.finite_mask is not None:
            into.finite_mask = r.finite_mask
    return list(merged.values())


class Capture:
    """One thing the recorder records.

    Subclasses set ``schedule`` (reduced values, every step it picks) and may set ``raw_schedule``
    (raw arrays); :meth:`compute` runs at fixed weights after ``optimizer.step()``, inside
    :func:`~pinnlog.recorder.captures.state.frozen_training_state`, and must not change the model,
    the optimizer or any RNG stream the training loop sees.
    """

    #: True if :meth:`compute` on a raw step allocates a K x P buffer (the writer's raw slot guards it).
    holds_raw_buffer = False

    def __init__(self, schedule: Schedule, raw_schedule: Schedule | None = None):
        self.schedule = schedule
        self.raw_schedule = raw_schedule

    def is_raw(self, step: int) -> bool:
        return self.raw_schedule is not None and bool(self.raw_schedule(step))

    def should_compute(self, step: int) -> bool:
        """When: the steps this capture runs at (a raw step is also a reduced one)."""
        return bool(self.schedule(step)) or self.is_raw(step)

    def compute(self, step: int) -> list[Rows]:  # pragma: no cover - abstract
        """What: the rows of ``step``, one per group written."""
        raise NotImplementedError

    def static(self) -> Mapping[str, Mapping[str, Any]]:
        """Arrays that do not grow, ``{group: {variable: values}}``, written once when recording starts."""
        return {}

    def attrs(self) -> Mapping[str, Any]:
        """Root attributes this capture contributes (its schedule, the layers it reads ...)."""
        return {}
