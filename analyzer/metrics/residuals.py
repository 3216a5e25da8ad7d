"""How evenly the residual is spread over the samples (the homogeneity of Eq. 20 that RBA pursues)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pinnlog.analyzer.metrics._common import finish, group_dataset, safe_divide

__all__ = ["rba_weight_spread", "residual_homogeneity"]


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


def rba_weight_spread(residuals) -> xr.Dataset:
    """How the RBA weights λ_i (Eq. 28) are spread over the samples at each capture.

    λ_i ← γλ_i + η|r_i|/max|r| tends to η/(1 − γ)·|r_i|/max|r| (1 with the paper's γ, η) where a residual
    stays large, so ``mean`` near ``max`` means every sample is weighted alike: the residuals are
    homogeneous (the paper's Figs. 6-7 read the same from the residual maps).

    Parameters
    ----------
    residuals : xarray.Dataset or xarray.DataTree
        The run or its ``residuals`` group: ``rba_weight (step, sample)``, recorded when the recorder's
        ``residuals(model)`` returns the pair ``(residual, rba_weight)``; without it, ``MissingGroupError``.

    Returns
    -------
    xarray.Dataset
        ``mean``, ``min``, ``max`` of λ over the samples and ``mean_over_max`` (1 = all alike) over
        ``step``. A NaN weight makes that capture NaN; all-zero weights (λ₀ = 0) give NaN for
        ``mean_over_max`` with a ``DegenerateMetricWarning``.

    References
    ----------
    Eq. 27-28 (RBA) and Eq. 20 (homogeneous residuals) of the paper.
    """
    ds = group_dataset(residuals, "residuals", ("rba_weight",))
    weight = ds["rba_weight"].astype(np.float64)
    mean = weight.mean("sample", skipna=False)
    peak = weight.max("sample", skipna=False)
    out = {
        "mean": finish(mean, "mean", "Eq. 28", "mean RBA weight over samples"),
        "min": finish(weight.min("sample", skipna=False), "min", "Eq. 28", "smallest RBA weight"),
        "max": finish(peak, "max", "Eq. 28", "largest RBA weight"),
        "mean_over_max": finish(
            safe_divide(mean, peak, "rba_weight_spread mean_over_max"), "mean_over_max", "Eq. 28", "mean / max RBA weight"
        ),
    }
    return xr.Dataset(out)
