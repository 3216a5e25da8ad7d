"""``detect_phases``: segment a curve with :class:`PhaseDetector`, label the segments, build a table."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, TypedDict, Unpack

import numpy as np
import ruptures as rpt
import xarray as xr

from pinnlog.analyzer.phases.detector import PhaseDetectionError, PhaseDetector, _signal_arrays
from pinnlog.analyzer.phases.labels import (
    DIFFUSION,
    FITTING,
    SRR_B_REGIME,
    TOTAL_DIFFUSION,
    definition_violations,
    label_segments,
)
from pinnlog.analyzer.phases.table import Phase, PhaseTable

__all__ = ["MAX_WIDTH", "detect_phases", "phase_evidence", "phases_from_metrics", "steepest_descent_onset"]

MAX_WIDTH = 1.0  # decades: a boundary whose 95 % interval is wider is "too noisy" to place
MIN_DECADES = 0.6  # a curve spanning fewer decades of steps is "too short" (3 segments of 0.2 decade)


class DetectorOptions(TypedDict, total=False):
    """The keyword arguments of :class:`PhaseDetector` that ``detect_phases`` passes on."""

    cost: str | rpt.base.BaseCost
    min_size: int
    bins_per_decade: int
    penalty: float | None
    refine: bool
    despike: int


def _slope(curve: xr.DataArray | None, first: int, last: int) -> float | None:
    """Least-squares slope of log10 curve vs log10 step over [first, last]; None with under 3 points."""
    if curve is None:
        return None
    steps, values, _ = _signal_arrays(curve)
    keep = (steps >= first) & (steps <= last) & (steps > 0) & np.isfinite(values) & (values > 0)
    if keep.sum() < 3 or np.ptp(steps[keep]) == 0:
        return None
    return float(np.polyfit(np.log10(steps[keep]), np.log10(values[keep]), 1)[0])


def phase_evidence(
    phases: list[Phase],
    *,
    test_error: xr.DataArray | None = None,
    loss: xr.DataArray | None = None,
    residual_homogeneity: xr.DataArray | None = None,
) -> list[dict[str, Any]]:
    """What the rest of the run says over each phase, and whether it matches the paper's description.

    Per phase: slopes (decades per decade) of the test error (Eq. 7), the loss and the residual
    homogeneity over its steps, where given. Then the descriptions of Sec. 3.1 as checks (None where the
    curve is missing): ``test_error_steepest`` (total diffusion has the steepest test-error descent of
    the run, Figs. 6-9), ``test_error_stagnant`` (fitting: the test error falls more slowly than in the
    phase after it, Fig. 6), ``residuals_homogenise`` (total diffusion: the residual dispersion falls,
    Fig. 1).
    """
    rows = []
    for p in phases:
        rows.append(
            {
                "label": p.label,
                "test_error_slope": _slope(test_error, p.first_step, p.last_step),
                "loss_slope": _slope(loss, p.first_step, p.last_step),
                "residual_homogeneity_slope": _slope(residual_homogeneity, p.first_step, p.last_step),
            }
        )
    slopes = {r["label"]: r["test_error_slope"] for r in rows}
    known = [s for s in slopes.values() if s is not None]
    for r in rows:
        te = r["test_error_slope"]
        if r["label"] == TOTAL_DIFFUSION:
            r["test_error_steepest"] = None if te is None else bool(te <= min(known))
            rh = r["residual_homogeneity_slope"]
            r["residuals_homogenise"] = None if rh is None else bool(rh < 0)
        if r["label"] == FITTING:
            after = slopes.get(DIFFUSION)
            r["test_error_stagnant"] = None if te is None or after is None else bool(te >= after)
    return rows


def _regime_crossing(detector: PhaseDetector, start: int, end: int, threshold: float) -> int | None:
    """Sample index where the line of samples ``start:end`` (log10 value vs log10 step) falls below
    ``threshold``, if it starts above and crosses strictly inside; else None."""
    x, y = detector.log_steps_[start:end], detector.log_values_[start:end]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    line = intercept + slope * x
    if not (slope < 0 and line[0] > threshold > line[-1]):
        return None
    return start + int(np.argmax(line < threshold))


def steepest_descent_onset(curve: xr.DataArray, after: int = 0) -> int | None:
    """First step of the steepest falling segment (log10 value vs log10 step) of ``curve`` after step
    ``after``: where a test error starts its fastest convergence (total diffusion, Sec. 3.1). None when
    the curve is too short or nothing falls."""
    # a test error is evaluated at some steps only: the NaN rows between are not values, and not worth a warning
    curve = curve.dropna(curve.dims[0]) if curve.ndim == 1 else curve
    try:
        detector = PhaseDetector(min_size=4).fit(curve)
        detector.predict()
    except PhaseDetectionError:
        return None
    segments = [seg for seg in detector.segments() if seg.first_step > after and np.isfinite(seg.slope) and seg.slope < 0]
    if not segments:
        return None
    return min(segments, key=lambda seg: seg.slope).first_step


def _align_with_test_error(segments: list[Phase], names: list[str], test_error: xr.DataArray) -> list[str]:
    """Move the start of total diffusion within the SNR's run-up to the segment nearest (in log10 step)
    the onset of the test error's steepest descent: both mark the phase (Sec. 3.1, Figs. 6-9), and
    where the SNR rises in several steps the error says which one the run converges from."""
    first = names.index(TOTAL_DIFFUSION)
    last_fit = max((i for i, n in enumerate(names) if n == FITTING), default=-1)
    onset = steepest_descent_onset(test_error, after=segments[last_fit].last_step if last_fit >= 0 else 0)
    if onset is None:
        return names
    levels = [seg.median_log for seg in segments]
    peak = max(range(first, len(segments)), key=lambda i: levels[i])
    window = range(first, peak + 1)
    if not segments[first].first_step / 2 <= onset <= segments[peak].last_step:
        return names
    best = min(window, key=lambda i: abs(math.log10(segments[i].first_step / onset)))
    return [DIFFUSION if first <= i < best else n for i, n in enumerate(names)]


def _test_error_confirms(segments: list[Phase], names: list[str], test_error: xr.DataArray) -> bool:
    """Whether the test error falls faster in total diffusion than in diffusion (Sec. 3.1: total
    diffusion has the steepest convergence). True when the error cannot tell (too few points)."""
    spans = {}
    for label in (DIFFUSION, TOTAL_DIFFUSION):
        idx = [i for i, n in enumerate(names) if n == label]
        if not idx:
            return True
        spans[label] = (segments[idx[0]].first_step, segments[idx[-1]].last_step)
    total = _slope(test_error, *spans[TOTAL_DIFFUSION])
    diffusion = _slope(test_error, *spans[DIFFUSION])
    if total is None or diffusion is None:
        return True
    return total < min(diffusion, 0.0)


def _table_too_short(name: str, note: str, settings: dict) -> PhaseTable:
    return PhaseTable(name=name, phases=[], segments=[], settings=settings, verdict="too short", note=note)


def detect_phases(
    signal: xr.DataArray,
    n_phases: int | None = None,
    *,
    regime: float | str | None = "auto",
    labels: bool = True,
    dim: Hashable | None = None,
    test_error: xr.DataArray | None = None,
    loss: xr.DataArray | None = None,
    residual_homogeneity: xr.DataArray | None = None,
    max_width: float = MAX_WIDTH,
    **detector_options: Unpack[DetectorOptions],
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
    regime : float, "auto" or None
        Value of the curve that separates the deterministic from the stochastic regime, used by
        the labelling rule (:func:`label_segments`): 1 for SNR and SRR_C, ``1/sqrt(2)`` for SRR_B
        (Eq. 17), None for a curve without regimes. ``"auto"``: ``1/sqrt(2)`` for a curve named
        ``srr_b``, else 1.
    labels : bool
        Label the segments by the paper's phases (true), or call them ``segment 1``, ``segment 2``
        ... and keep every segment as a row (false; for curves that are not an SNR, a test error).
    dim : hashable, optional
        A second dimension of ``signal`` (e.g. ``"layer"``): one table per value of it.
    test_error, loss, residual_homogeneity : xarray.DataArray, optional
        Curves over ``step`` of the same run: their slopes per phase and the paper's descriptions
        checked against them go into ``table.evidence`` (:func:`phase_evidence`).
    max_width : float
        A boundary whose 95 % interval (:meth:`PhaseDetector.intervals`) is wider than this many
        decades makes the verdict ``"too noisy"``.
    **detector_options : cost, min_size, bins_per_decade, penalty, refine, despike
        Passed to :class:`PhaseDetector` (its defaults apply).

    Returns
    -------
    PhaseTable, or dict of PhaseTable keyed by the values of ``dim``.
        A curve spanning too few steps gives a table with no phases and the verdict ``"too short"``.

    References
    ----------
    Phases as in the paper's Fig. 2 and Sec. 2: fitting (SNR >> 1), diffusion (SNR < O(1)), total
    diffusion (an abrupt rise of the SNR to a stable level).
    """
    if not (regime is None or regime == "auto" or (isinstance(regime, (int, float)) and regime > 0)):
        raise PhaseDetectionError(f"regime must be 'auto', None or a positive number, got {regime!r}")
    evidence_curves = dict(test_error=test_error, loss=loss, residual_homogeneity=residual_homogeneity)
    if dim is not None:
        if dim not in signal.dims:
            raise PhaseDetectionError(f"dim {dim!r} is not a dimension of the signal; it has {tuple(signal.dims)}")
        tables: dict[Hashable, PhaseTable] = {}
        for key in signal[dim].values:
            curve = signal.sel({dim: key})
            name = str(curve.coords["layer_name"].values) if "layer_name" in curve.coords else f"{dim}={key}"
            curve = curve.rename(f"{signal.name or 'signal'} {name}")
            key = key.item() if hasattr(key, "item") else key
            table = detect_phases(
                curve,
                n_phases,
                regime=regime,
                labels=labels,
                max_width=max_width,
                test_error=test_error,
                loss=loss,
                residual_homogeneity=residual_homogeneity,
                **detector_options,
            )
            assert isinstance(table, PhaseTable)  # one curve (no dim): one table
            tables[key] = table
        return tables
    detector = PhaseDetector(**detector_options)
    settings: dict[str, Any] = {
        "cost": detector.cost if isinstance(detector.cost, str) else type(detector.cost).__name__,
        "min_size": detector.min_size,
        "bins_per_decade": detector.bins_per_decade,
        "despike": detector.despike,
        "n_phases": n_phases,
        "refine": detector.refine,
    }
    steps, _, name = _signal_arrays(signal)
    positive = steps[steps > 0]
    span = float(np.log10(positive.max() / positive.min())) if positive.size else 0.0
    if n_phases is None and span < MIN_DECADES:
        return _table_too_short(
            name, f"the curve spans {span:.2f} decades of steps; phases need at least {MIN_DECADES}", settings
        )
    try:
        detector.fit(signal)
    except PhaseDetectionError as exc:
        if n_phases is None and "usable samples" in str(exc):
            return _table_too_short(name, str(exc).split(": ", 1)[-1], settings)
        raise
    detector.predict(n_phases)
    segments = detector.segments()
    if regime == "auto":
        regime = SRR_B_REGIME if detector.name_.split(" ")[0] == "srr_b" else 1.0
    assert not isinstance(regime, str)  # "auto" is resolved just above; other strings were refused at the door
    settings.update(
        penalty=None if detector.penalty_ is None else float(detector.penalty_),
        noise=float(detector.noise_),
        regime=regime if labels else None,
        n_outliers=int(detector.outliers_.sum()),
    )
    if labels:
        names = label_segments(
            [s.median_log for s in segments],
            regime=regime,
            slopes=[s.slope for s in segments],
            spans=[math.log10((s.last_step + 1) / s.first_step) for s in segments],
        )
    else:
        names = [f"segment {i + 1}" for i in range(len(segments))]
    if labels and test_error is not None and TOTAL_DIFFUSION in names:
        names = _align_with_test_error(segments, names, test_error)
        if not _test_error_confirms(segments, names, test_error):
            names = [DIFFUSION if n == TOTAL_DIFFUSION else n for n in names]
    segments = [s.with_label(label) for s, label in zip(segments, names)]
    replaced: dict[int, int] = {}
    if n_phases is None and labels:  # neighbours with one label are one phase, statistics over the union
        last = [i for i in range(len(names)) if i + 1 == len(names) or names[i + 1] != names[i]]
        bkps = [detector.bkps_[i] for i in last]
        if names[0] == FITTING and len(last) > 1 and regime is not None:
            # diffusion begins where the SNR enters the stochastic regime (Fig. 2): if the last fitting
            # segment crosses the regime inside it, the boundary is the crossing, not the segment's end
            end_fit = last[0]
            seg_start = detector.bkps_[end_fit - 1] if end_fit else 0
            crossing = _regime_crossing(detector, seg_start, bkps[0], math.log10(regime))
            if crossing is not None:
                replaced = {bkps[0]: crossing}
                bkps[0] = crossing
        phases = detector.segments([names[i] for i in last], bkps)
        # the labels came from segment levels; the merged phases must still honour the definitions.
        # A long final decline can pull total diffusion's median down: then it is diffusion. Without it,
        # a diffusion that holds the later rise can lie above fitting: then there was no high-to-low
        # transition to call fitting either. Each step only removes a label, so this ends.
        for dropped in (TOTAL_DIFFUSION, FITTING):
            if not definition_violations(phases) or dropped not in names:
                continue
            names = [DIFFUSION if n == dropped else n for n in names]
            segments = [s.with_label(label) for s, label in zip(segments, names)]
            last = [i for i in range(len(names)) if i + 1 == len(names) or names[i + 1] != names[i]]
            bkps = [detector.bkps_[i] for i in last]
            replaced = {}
            phases = detector.segments([names[i] for i in last], bkps)
    else:
        bkps = list(detector.bkps_)
        phases = segments
    verdict, note = "ok", ""
    if detector.degree_ is not None and len(phases) > 1:
        # each boundary between its neighbouring *segment* boundaries: a phase is several segments, and
        # one line per phase would fit badly enough to make every boundary look uncertain
        # a regime crossing takes the place of the segment end it moved: its interval then spans from
        # the crossing to wherever the cost says the descent ends
        fine = sorted({replaced.get(b, b) for b in detector.bkps_[:-1]} | set(bkps[:-1]))
        interval_of = dict(zip(fine, detector.intervals([*fine, detector.steps_.size])))
        merged = phases is not segments
        phases = [phases[0]] + [p.with_interval(*interval_of[b]) for p, b in zip(phases[1:], bkps[:-1])]
        if not merged:
            segments = phases
        wide = [p for p in phases[1:] if (p.uncertainty_decades or 0.0) > max_width]
        if wide:
            verdict = "too noisy"
            note = "; ".join(
                f"the start of {p.label} ({p.first_step:,}) is only known within {p.first_step_low:,}-{p.first_step_high:,}"
                f" ({p.uncertainty_decades:.1f} decades, more than {max_width:g})"
                for p in wide
            )
    evidence = (
        phase_evidence(phases, **evidence_curves) if labels and any(c is not None for c in evidence_curves.values()) else []
    )
    return PhaseTable(
        name=detector.name_, phases=phases, segments=segments, settings=settings, verdict=verdict, note=note, evidence=evidence
    )


def phases_from_metrics(values: dict[str, Any], why_missing: str = "no whole-net SNR was recorded"):
    """Phases of a run from its computed metrics (as the report holds them): ``(table, layer_tables, note)``.

    ``values`` maps metric names to eager xarray objects: ``snr`` (required for any phase),
    ``snr_per_layer`` (one table per weight matrix, the paper's Fig. A.13), and as evidence
    ``test_error``, ``loss``, ``residual_homogeneity`` (its ``cv``). ``note`` says why there is no table,
    or what the verdict means when it is not ``"ok"``; ``None`` otherwise. Detection errors become notes.
    """
    from pinnlog.analyzer.errors import PinnlogError

    snr = values.get("snr")
    if snr is None:
        return None, None, why_missing
    homogeneity = values.get("residual_homogeneity")
    if isinstance(homogeneity, xr.Dataset):
        homogeneity = homogeneity.get("cv")
    test_error, loss = values.get("test_error"), values.get("loss")
    try:
        table = detect_phases(snr, test_error=test_error, loss=loss, residual_homogeneity=homogeneity)
    except PinnlogError as exc:
        return None, None, f"phase detection failed: {exc}"
    layers = None
    per_layer = values.get("snr_per_layer")
    if per_layer is not None and "layer" in per_layer.dims:
        try:
            layers = detect_phases(per_layer, dim="layer", test_error=test_error, loss=loss, residual_homogeneity=homogeneity)
        except PinnlogError:
            layers = None  # the whole-net table stands on its own; per-layer curves may be too sparse
    assert isinstance(table, PhaseTable)  # one curve (no dim): one table
    note = None if table.verdict == "ok" else f"{table.verdict}: {table.note}"
    return table, layers, note
