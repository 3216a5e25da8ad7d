"""``detect_phases``: segment a curve with :class:`PhaseDetector`, label the segments, build a table."""

from __future__ import annotations

from collections.abc import Hashable

import xarray as xr

from pinnlog.analyzer.phases.detector import PhaseDetectionError, PhaseDetector
from pinnlog.analyzer.phases.labels import SRR_B_REGIME, label_segments
from pinnlog.analyzer.phases.table import PhaseTable

__all__ = ["detect_phases"]


def detect_phases(
    signal: xr.DataArray,
    n_phases: int | None = None,
    *,
    cost="linear",
    min_size: int = 4,
    bins_per_decade: int = 20,
    penalty: float | None = None,
    refine: bool = True,
    regime: float | str | None = "auto",
    labels: bool = True,
    dim: Hashable | None = None,
) -> PhaseTable | dict[Hashable, PhaseTable]:
    """Segment a positive curve into training phases and label them (fitting, diffusion, total diffusion).

    Parameters
    ----------
    signal : xarray.DataArray
        A positive curve over ``step``: SNR (Eq. 8), SRR_B (Eq. 11), SRR_C (Eq. 13), a per-layer
        SNR (then pass ``dim="layer"``), a test error ...
    n_phases : int, optional
        Force the number of phases (segments); the table then has exactly this many rows.
        Default: chosen by a BIC penalty from a robust noise estimate, and neighbouring segments
        that get the same label are merged into one phase.
    cost, min_size, bins_per_decade, penalty, refine
        Passed to :class:`PhaseDetector`.
    regime : float, "auto" or None
        Value of the curve that separates the deterministic from the stochastic regime, used by
        the labelling rule (:func:`label_segments`): 1 for SNR and SRR_C, ``1/sqrt(2)`` for SRR_B
        (Eq. 17), None for a curve without regimes (a test error). ``"auto"``: ``1/sqrt(2)`` for
        a curve named ``srr_b``, else 1.
    labels : bool
        Label the segments by the paper's phases (true), or call them ``segment 1``, ``segment 2``
        ... and keep every segment as a row (false; for curves that are not an SNR, a test error).
    dim : hashable, optional
        A second dimension of ``signal`` (e.g. ``"layer"``): one table per value of it.

    Returns
    -------
    PhaseTable, or dict of PhaseTable keyed by the values of ``dim``.

    References
    ----------
    Phases as in the paper's Fig. 2 and Sec. 2: fitting (SNR >> 1), diffusion (SNR < O(1)), total
    diffusion (an abrupt rise of the SNR to a stable level).
    """
    if not (regime is None or regime == "auto" or (isinstance(regime, (int, float)) and regime > 0)):
        raise PhaseDetectionError(f"regime must be 'auto', None or a positive number, got {regime!r}")
    if dim is not None:
        if dim not in signal.dims:
            raise PhaseDetectionError(f"dim {dim!r} is not a dimension of the signal; it has {tuple(signal.dims)}")
        settings = dict(cost=cost, min_size=min_size, bins_per_decade=bins_per_decade, penalty=penalty, refine=refine)
        tables = {}
        for key in signal[dim].values:
            curve = signal.sel({dim: key})
            name = str(curve.coords["layer_name"].values) if "layer_name" in curve.coords else f"{dim}={key}"
            curve = curve.rename(f"{signal.name or 'signal'} {name}")
            key = key.item() if hasattr(key, "item") else key
            tables[key] = detect_phases(curve, n_phases, regime=regime, labels=labels, **settings)
        return tables
    detector = PhaseDetector(cost, min_size=min_size, bins_per_decade=bins_per_decade, penalty=penalty, refine=refine)
    detector.fit(signal)
    detector.predict(n_phases)
    segments = detector.segments()
    if regime == "auto":
        regime = SRR_B_REGIME if detector.name_.split(" ")[0] == "srr_b" else 1.0
    if labels:
        names = label_segments([s.median_log for s in segments], regime=regime)
    else:
        names = [f"segment {i + 1}" for i in range(len(segments))]
    segments = [s.with_label(name) for s, name in zip(segments, names)]
    if n_phases is None and labels:  # neighbours with one label are one phase, statistics over the union
        last = [i for i in range(len(names)) if i + 1 == len(names) or names[i + 1] != names[i]]
        phases = detector.segments([names[i] for i in last], [detector.bkps_[i] for i in last])
    else:
        phases = segments
    settings = {
        "cost": detector.cost if isinstance(detector.cost, str) else type(detector.cost).__name__,
        "min_size": detector.min_size,
        "bins_per_decade": detector.bins_per_decade,
        "penalty": None if detector.penalty_ is None else float(detector.penalty_),
        "noise": float(detector.noise_),
        "n_phases": n_phases,
        "refine": refine,
        "regime": regime if labels else None,
    }
    return PhaseTable(name=detector.name_, phases=phases, segments=segments, settings=settings)
