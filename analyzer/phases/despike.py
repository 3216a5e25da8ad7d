"""Robust despiking of a log10 curve before change-point search (a Hampel filter).

The raw SNR dips by decades whenever the batch-mean gradient nearly cancels (the authors' logs, and
the paper's Fig. A.14 (b): "large oscillations ... in the non-smoothed curves"). A dip is one or a few
captures, not a phase; where captures are sparse (one per grid cell) it would move a cell's median.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["hampel"]

MAD_TO_SIGMA = 1.4826


def hampel(y: np.ndarray, half_width: int = 3, threshold: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Replace outliers of ``y`` by the median of their ``2 * half_width + 1`` neighbours.

    A sample is an outlier when it lies more than ``threshold`` robust standard deviations (1.4826 x the
    MAD of its window) from its window's median. The MAD is floored at the median MAD of the whole curve
    (the MAD of 7 samples is itself noisy), so only gross outliers are replaced: on white noise almost
    none, while a dip of 1-3 decades on noise of 0.05-0.3 decades always is.

    Parameters
    ----------
    y : ndarray
        1-D samples in step order (log10 values).
    half_width : int
        Neighbours on each side (edges: the window is mirrored). 0 returns ``y`` unchanged.
    threshold : float
        Outlier threshold in robust standard deviations.

    Returns
    -------
    cleaned : ndarray
        ``y`` with the outliers replaced.
    outlier : ndarray of bool
        Which samples were replaced.
    """
    y = np.asarray(y, dtype=np.float64)
    if half_width <= 0 or y.size < 2 * half_width + 1:
        return y.copy(), np.zeros(y.size, dtype=bool)
    padded = np.pad(y, half_width, mode="reflect")
    windows = sliding_window_view(padded, 2 * half_width + 1)
    median = np.median(windows, axis=1)
    mad = np.median(np.abs(windows - median[:, None]), axis=1)
    floor = max(float(np.median(mad)), 1e-12)
    outlier = np.abs(y - median) > threshold * MAD_TO_SIGMA * np.maximum(mad, floor)
    return np.where(outlier, median, y), outlier
