"""The result of phase detection: labelled phases with their step ranges and statistics.

Kept apart from the detector so that a table can be built, printed and serialised without ruptures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Phase", "PhaseTable"]


@dataclass(frozen=True)
class Phase:
    """One phase: its label, step range, median value and slope of log10 value vs log10 step.

    ``median`` and ``slope`` weigh every 1/``bins_per_decade`` decade of steps equally (as a log-step
    axis shows the curve), so densely sampled late steps do not outvote the early ones.
    """

    label: str
    first_step: int
    last_step: int
    median: float
    slope: float
    n_samples: int
    #: 95 % interval of ``first_step`` (the boundary with the phase before; None for the first phase)
    first_step_low: int | None = None
    first_step_high: int | None = None

    @property
    def uncertainty_decades(self) -> float | None:
        """Width of the interval of ``first_step`` in decades of steps (None for the first phase)."""
        if self.first_step_low is None or self.first_step_high is None:
            return None
        return math.log10(max(self.first_step_high, 1) / max(self.first_step_low, 1))

    @classmethod
    def from_samples(
        cls, label: str, steps: np.ndarray, log_steps: np.ndarray, log_values: np.ndarray, weights: np.ndarray | None = None
    ) -> Phase:
        """Statistics of the raw samples of one phase: weighted median of the values and weighted
        least-squares slope of log10 value vs log10 step (equal weights by default)."""
        w = np.ones(steps.size) if weights is None else np.asarray(weights, dtype=np.float64)
        order = np.argsort(log_values, kind="stable")
        cum = np.cumsum(w[order])
        median_log = float(log_values[order][np.searchsorted(cum, cum[-1] / 2)])
        if log_steps.size >= 2 and np.ptp(log_steps) > 0:
            slope = float(np.polyfit(log_steps, log_values, 1, w=np.sqrt(w))[0])
        else:
            slope = float("nan")
        return cls(label, int(steps[0]), int(steps[-1]), float(10.0**median_log), slope, int(steps.size))

    @property
    def median_log(self) -> float:
        return math.log10(self.median) if self.median > 0 else float("-inf")

    def with_label(self, label: str) -> Phase:
        return replace(self, label=label)

    def with_interval(self, low: int | None, high: int | None) -> Phase:
        return replace(self, first_step_low=low, first_step_high=high)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class PhaseTable:
    """Labelled phases of one curve.

    Attributes
    ----------
    name : str
        Name of the curve (``snr``, ``snr layer_3`` ...).
    phases : list of Phase
        The phases in step order (neighbouring segments with one label merged, unless ``n_phases``
        was forced).
    segments : list of Phase
        The detector's segments before merging, each with its own label.
    settings : dict
        Detector settings and estimates (cost, penalty, noise ...).
    verdict : str
        ``"ok"``; ``"too short"`` (no phases: the curve spans too few steps to read any);
        ``"too noisy"`` (a boundary's 95 % interval is wider than the detector's ``max_width``).
    note : str
        Why, in words, when the verdict is not ``"ok"``.
    evidence : list of dict
        Per phase, what else the run says (slopes of log10 test error, loss and residual homogeneity
        vs log10 step over the phase, where recorded), and the checks of the paper's descriptions.
    """

    name: str
    phases: list[Phase]
    segments: list[Phase] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    verdict: str = "ok"
    note: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.phases)

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases)

    def __getitem__(self, index: int) -> Phase:
        return self.phases[index]

    @property
    def boundaries(self) -> list[int]:
        """First step of every phase after the first."""
        return [p.first_step for p in self.phases[1:]]

    @property
    def current(self) -> str | None:
        """Label of the last phase: the one a run being recorded is in now (None without phases)."""
        return self.phases[-1].label if self.phases else None

    def transition(self, label: str) -> int | None:
        """First step of the first phase labelled ``label`` (e.g. ``"total diffusion"``), or None."""
        return next((p.first_step for p in self.phases if p.label == label), None)

    def to_dataset(self) -> xr.Dataset:
        """The table as an xarray Dataset over a ``phase`` dimension."""
        columns = {
            "label": np.array([p.label for p in self.phases], dtype=str),
            "first_step": np.array([p.first_step for p in self.phases], dtype=np.int64),
            "last_step": np.array([p.last_step for p in self.phases], dtype=np.int64),
            "median": np.array([p.median for p in self.phases], dtype=np.float64),
            "slope": np.array([p.slope for p in self.phases], dtype=np.float64),
            "n_samples": np.array([p.n_samples for p in self.phases], dtype=np.int64),
            # -1: no interval (the first phase)
            "first_step_low": np.array(
                [-1 if p.first_step_low is None else p.first_step_low for p in self.phases], dtype=np.int64
            ),
            "first_step_high": np.array(
                [-1 if p.first_step_high is None else p.first_step_high for p in self.phases], dtype=np.int64
            ),
        }
        ds = xr.Dataset({k: ("phase", v) for k, v in columns.items()}, coords={"phase": np.arange(len(self.phases))})
        ds["median"].attrs["description"] = f"median of {self.name} over the phase"
        ds["slope"].attrs["description"] = f"least-squares slope of log10 {self.name} vs log10 step"
        ds.attrs["signal"] = self.name
        ds.attrs["verdict"], ds.attrs["note"] = self.verdict, self.note
        ds.attrs.update({f"detector_{k}": ("none" if v is None else v) for k, v in self.settings.items()})
        return ds

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (no pandas, no numpy types; NaN becomes None)."""

        def row(p: Phase) -> dict[str, Any]:
            d = asdict(p)
            d["median"], d["slope"] = _json_number(p.median), _json_number(p.slope)
            return d

        settings = {k: (_json_number(v) if isinstance(v, float) else v) for k, v in self.settings.items()}

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {str(k): clean(v) for k, v in value.items()}
            if isinstance(value, float):
                return _json_number(value)
            return value

        return {
            "signal": self.name,
            "verdict": self.verdict,
            "note": self.note,
            "phases": [row(p) for p in self.phases],
            "segments": [row(p) for p in self.segments],
            "evidence": [clean(e) for e in self.evidence],
            "settings": settings,
        }

    def __str__(self) -> str:
        head = ("phase", "first step", "95% interval", "last step", f"median {self.name}", "slope")
        rows = [
            (
                p.label,
                f"{p.first_step:,}",
                "" if p.first_step_low is None else f"{p.first_step_low:,}-{p.first_step_high:,}",
                f"{p.last_step:,}",
                f"{p.median:.3g}",
                "nan" if math.isnan(p.slope) else f"{p.slope:+.2f}",
            )
            for p in self.phases
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)] if self.phases else []
        if self.verdict != "ok":
            lines.append(f"{self.verdict}: {self.note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"PhaseTable({self.name!r}, boundaries={self.boundaries}, labels={[p.label for p in self.phases]})"
