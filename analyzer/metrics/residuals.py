"""How evenly the residual is spread over the samples (the homogeneity of Eq. 20 that RBA pursues)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pinnlog.analyzer.metrics._common import finish, group_dataset, safe_divide

__all__ = ["residual_homogeneity"]


def residual_homogeneity(residuals) -> xr.Dataset:
    """Dispersion of the per-sample residual magnitudes |r_i| at each capture.

    ``cv`` = std_i |r_i| / mean_i |r_i| (population std, ddof=0): 0 when every sample has the
    same magnitude. ``max_over_mean`` = max_i |r_i| / mean_i |r_i|: 1 when homogeneous; RBA
    (Eq. 28) normalises by max |r|, so this is the spread it equalises.

    Parameters
    ----------
    residuals : xarray.Dataset or xarray.DataTree
        The run or its ``residuals`` group: ``residual (step, sample)``.

    Returns
    -------
    xarray.Dataset
        ``cv`` and ``max_over_mean`` over ``step``. A NaN residual makes that capture NaN; an
        all-zero residual gives NaN, each with a ``DegenerateMetricWarning``.

    References
    ----------
    Eq. 20 (homogeneous residuals) and Eq. 28 (RBA) of the paper.
    """
    ds = group_dataset(residuals, "residuals", ("residual",))
    magnitude = np.abs(ds["residual"].astype(np.float64))
    mean = magnitude.mean("sample", skipna=False)
    std = magnitude.std("sample", ddof=0, skipna=False)
    peak = magnitude.max("sample", skipna=False)
    cv = finish(
        safe_divide(std, mean, "residual_homogeneity cv"), "cv", "Eq. 20", "coefficient of variation of |residual| over samples"
    )
    ratio = finish(
        safe_divide(peak, mean, "residual_homogeneity max_over_mean"),
        "max_over_mean",
        "Eq. 20",
        "max |residual| / mean |residual|",
    )
    return xr.Dataset({"cv": cv, "max_over_mean": ratio})
