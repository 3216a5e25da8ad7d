"""The labelling rule: which segment is fitting, diffusion or total diffusion (``docs/phases.md``).

The rule reads the paper's definitions (Sec. 2, Fig. 2; Sec. 3.1, Figs. 6-9) off the segments' levels
(median log10 SNR), slopes and lengths; :func:`definition_violations` checks a labelled table against
the same definitions, so no label can contradict them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DIFFUSION",
    "FITTING",
    "MIN_FIT_DROP",
    "MIN_RISE",
    "SRR_B_REGIME",
    "STEEP_DESCENT",
    "TOTAL_DIFFUSION",
    "definition_violations",
    "label_segments",
]

FITTING, DIFFUSION, TOTAL_DIFFUSION = "fitting", "diffusion", "total diffusion"
SRR_B_REGIME = 2**-0.5  # SNR = 1 <=> SRR_B = 1/sqrt(2) (Eq. 17)
MIN_FIT_DROP = 0.5  # decades: the high-to-low transition out of fitting is at least this deep
MIN_RISE = 0.3  # decades: the "sudden rise" into total diffusion, above the diffusion floor
STEEP_DESCENT = -1.0  # decades per decade: a segment falling this fast is still the fitting descent
ORDER_ONE = 1.0  # decades above the regime that still count as SNR = O(1): a floor higher is no diffusion
FLOOR_SHARE = 0.25  # fitting ends where the descent is within this share of its depth from the floor


def label_segments(
    levels: Sequence[float],
    regime: float | None = 1.0,
    *,
    slopes: Sequence[float] | None = None,
    spans: Sequence[float] | None = None,
    min_rise: float = MIN_RISE,
) -> list[str]:
    """Label consecutive segments from their median log10 levels (the rule of ``docs/phases.md``).

    Parameters
    ----------
    levels : sequence of float
        Median log10 value of each segment, in step order.
    regime : float or None
        Value that separates the deterministic from the stochastic regime: SNR = 1 (Sec. 2, Eq. 5),
        SRR_B = 1/sqrt(2) (Eq. 17). ``None``: a curve without regimes (fitting needs only the drop).
    slopes : sequence of float, optional
        Slope of log10 value vs log10 step per segment (a steep one is still the fitting descent).
    spans : sequence of float, optional
        Length of each segment in decades of steps (where a segment's line begins; default 1).
    min_rise : float
        Smallest rise (decades) above the diffusion floor that counts as the jump into total diffusion.

    Returns
    -------
    list of str
        ``"fitting"``, ``"diffusion"`` or ``"total diffusion"`` per segment.

    Notes
    -----
    The *first trough* is the first segment lower than the one before it and not higher than the one
    after it; the *floor* is its level.

    0. If the run starts above the regime and its floor stays more than ``ORDER_ONE`` decade above it,
       the SNR never reached O(1): every segment is fitting (no diffusion yet, Fig. 2).
    1. Fitting (SNR >> 1, the high-to-low transition): only if the run starts above the regime and at
       least ``MIN_FIT_DROP`` decades above the floor. The leading segments before the first trough
       that are in the upper half (log10) between the first peak and the floor, or still falling
       steeply (slope <= ``STEEP_DESCENT``), are fitting: fitting ends where the descent reaches the
       floor, wherever the floor lies relative to SNR 1 (cavity's floor is near it, Burgers' far below).
    2. Total diffusion (an abrupt rise to a stable level): after fitting, the highest segment that is at
       least ``min_rise`` above the lowest segment between fitting and it. It starts at the earliest
       segment of the run-up that is at least half-way (log10) up from that low; every later segment
       (the final decline) belongs to it. Earlier segments that fall steeply (slope <= ``STEEP_DESCENT``)
       end the run-up: a spike that drops again is not the rise. Nothing requires total diffusion to be above SNR 1 (Burgers stays below, Fig. 8).
    3. Every other segment is diffusion.
    """
    m = np.asarray(levels, dtype=np.float64)
    k = m.size
    if k == 0:
        return []
    slope = np.zeros(k) if slopes is None else np.nan_to_num(np.asarray(slopes, dtype=np.float64))
    span = np.ones(k) if spans is None else np.maximum(np.asarray(spans, dtype=np.float64), 1e-9)
    threshold = -math.inf if regime is None else math.log10(regime)
    labels = [DIFFUSION] * k
    if k == 1:
        return [FITTING if regime is None or m[0] > threshold else DIFFUSION]

    # the floor: the lowest level the descent reaches before the SNR rises again by min_rise (only a
    # rise after a real descent counts, so the wander of the fitting plateau does not end the search)
    low, floor_at = m[0], 0
    for j in range(1, k):
        if m[j] < low:
            low, floor_at = m[j], j
        elif m[j] >= low + min_rise and low <= m[0] - MIN_FIT_DROP:
            break
    if regime is not None and m[0] > threshold and low > threshold + ORDER_ONE:
        # the SNR never came down to O(1): no diffusion yet (SNR < O(1), Fig. 2), the run is still fitting
        return [FITTING] * k
    n_fit = 0
    drop = float(m[:floor_at].max()) - low if floor_at else 0.0
    if m[0] > threshold and drop >= MIN_FIT_DROP:
        near_floor = low + FLOOR_SHARE * drop
        start_level = m - slope * span / 2  # where each segment's line begins
        steep = slope <= STEEP_DESCENT
        # fitting: above the regime (SNR >> 1) and not yet at the floor, or still descending steeply
        # from there; it ends at the first segment in the stochastic regime or near the floor
        fitting = ((m > threshold) & (m >= near_floor)) | (steep & (start_level > threshold) & (start_level >= near_floor))
        while n_fit < floor_at and fitting[n_fit]:
            n_fit += 1
    labels[:n_fit] = [FITTING] * n_fit

    rest = m[n_fit:]
    if rest.size >= 2:
        low_before = np.minimum.accumulate(rest)
        rise = np.r_[-np.inf, rest[1:] - low_before[:-1]]
        candidates = np.flatnonzero(rise >= min_rise)
        if candidates.size:
            peak = int(candidates[np.argmax(rest[candidates])])
            low = float(low_before[peak - 1])
            half_rise = (low + rest[peak]) / 2
            start = peak
            rest_slope = slope[n_fit:]
            # the run-up: earlier segments at least half-way up that do not fall back (a spike that
            # drops again is diffusion's wander, not the rise to a stable level)
            while start > 0 and rest[start - 1] >= half_rise and rest_slope[start - 1] > STEEP_DESCENT:
                start -= 1
            if start > 0:
                labels[n_fit + start :] = [TOTAL_DIFFUSION] * (k - n_fit - start)
    return labels


def definition_violations(phases: Sequence) -> list[str]:
    """What in a labelled table contradicts the paper's definitions; empty when nothing does.

    Checks: the order fitting < diffusion < total diffusion, each at most once; fitting's median above
    diffusion's (the high-to-low transition); total diffusion's median above diffusion's (the SNR rose);
    no total diffusion without diffusion before it.

    Parameters
    ----------
    phases : sequence of Phase
        A table's phases (``label`` and ``median`` are read). Neither is checked against the regime:
        fitting may end below it and total diffusion may stay below it (Burgers, Fig. 8).
    """
    order = {FITTING: 0, DIFFUSION: 1, TOTAL_DIFFUSION: 2}
    labels = [p.label for p in phases]
    known = [lab for lab in labels if lab in order]
    out = []
    if [order[lab] for lab in known] != sorted(order[lab] for lab in known) or len(set(known)) != len(known):
        out.append(f"phases out of order or repeated: {labels}")
    median = {p.label: p.median for p in phases}
    if FITTING in median and DIFFUSION in median and not median[FITTING] > median[DIFFUSION]:
        out.append(f"fitting median {median[FITTING]:.3g} is not above diffusion's {median[DIFFUSION]:.3g}")
    if TOTAL_DIFFUSION in median:
        if DIFFUSION not in median:
            out.append("total diffusion without diffusion before it")
        elif not median[TOTAL_DIFFUSION] > median[DIFFUSION]:
            out.append(f"total diffusion median {median[TOTAL_DIFFUSION]:.3g} is not above diffusion's {median[DIFFUSION]:.3g}")
    return out
