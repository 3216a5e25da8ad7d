"""The labelling rule: which segment is fitting, diffusion or total diffusion (``docs/phases.md``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["DIFFUSION", "FITTING", "SRR_B_REGIME", "TOTAL_DIFFUSION", "label_segments"]

FITTING, DIFFUSION, TOTAL_DIFFUSION = "fitting", "diffusion", "total diffusion"
SRR_B_REGIME = 2**-0.5  # SNR = 1 <=> SRR_B = 1/sqrt(2) (Eq. 17)


def label_segments(levels: Sequence[float], regime: float | None = 1.0) -> list[str]:
    """Label consecutive segments from their median log10 levels (the rule of ``docs/phases.md``).

    Parameters
    ----------
    levels : sequence of float
        Median log10 value of each segment, in step order.
    regime : float or None
        Value that separates the deterministic from the stochastic regime: SNR = 1 (paper Sec. 2,
        Eq. 5), SRR_B = 1/sqrt(2) by Eq. 17. ``None``: a curve without regimes; fitting then ends
        where the first descent is half done (in log10).

    Returns
    -------
    list of str
        ``"fitting"``, ``"diffusion"`` or ``"total diffusion"`` per segment.

    Notes
    -----
    The *first trough* is the first segment lower than the one before it and not higher than the
    one after it.

    1. Fitting: the leading segments above the regime (SNR >> 1, the paper's Fig. 2), all before the
       first trough. A single segment is fitting if it is above the regime, else diffusion.
    2. Total diffusion: after fitting, the segment with the highest level, if a lower segment comes
       between fitting and it (the SNR fell and rose again); it starts at the earliest segment of the
       run that leads up to it staying at least half-way (in log10) above the lowest level between;
       every later segment (the final decline of the SNR) belongs to it.
    3. Every other segment is diffusion.
    """
    m = np.asarray(levels, dtype=np.float64)
    k = m.size
    if k == 0:
        return []
    if k == 1:
        return [FITTING if regime is None or m[0] > math.log10(regime) else DIFFUSION]
    labels = [DIFFUSION] * k
    trough = next((j for j in range(1, k) if m[j] < m[j - 1] and (j == k - 1 or m[j + 1] >= m[j])), 0)
    if regime is not None:
        above = m > math.log10(regime)
    else:
        above = m >= (m[:trough].max() + m[trough]) / 2 if trough else np.zeros(k, dtype=bool)
    n_fit = 0
    while n_fit < trough and above[n_fit]:
        n_fit += 1
    labels[:n_fit] = [FITTING] * n_fit
    rest = m[n_fit:]
    if rest.size >= 2:
        peak = int(np.argmax(rest))
        if peak > 0 and rest[:peak].min() < rest[peak]:
            half_rise = (rest[:peak].min() + rest[peak]) / 2
            start = peak
            while start > 0 and rest[start - 1] >= half_rise:
                start -= 1
            labels[n_fit + start :] = [TOTAL_DIFFUSION] * (k - n_fit - start)
    return labels
