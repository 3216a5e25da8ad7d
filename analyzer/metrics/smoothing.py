"""The authors' smoothing: a forward moving average with edge padding.

Metrics stay unsmoothed; smoothing is the caller's choice (figures, phase detection on a curve).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from pinnlog.analyzer.metrics._common import MetricArgumentError, safe_divide
from pinnlog.analyzer.metrics.snr import gradient_norms

__all__ = ["sma", "smoothed_snr"]


def _forward_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of x[..., i : i + window] along the last axis, the last value repeated past the end."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] == 0:
        return x
    tail = np.repeat(x[..., -1:], window - 1, axis=-1)
    padded = np.concatenate([x, tail], axis=-1)
    return sliding_window_view(padded, window, axis=-1).mean(axis=-1)


def sma(x, window: int, *, dim: str = "step"):
    """Forward simple moving average with edge padding, as in the authors' notebook.

    The value at position i is the mean of ``x[i : i + window]``, with the last value of ``x``
    repeated past the end (so the output has the input's length and its last value is ``x[-1]``).
    The window counts samples, not steps: on a log-spaced schedule it spans more steps later on.
    A NaN inside a window makes that output NaN.

    Parameters
    ----------
    x : xarray.DataArray, xarray.Dataset or numpy.ndarray
        The curve(s). xarray objects are smoothed along ``dim`` (variables without it are kept
        as they are); a numpy array along its last axis.
    window : int
        Samples per window, >= 1 (1 returns the values unchanged). The authors used 60 in their
        notebook (10 in the paper's text).
    dim : str
        The dimension to smooth along.

    Returns
    -------
    Same type as ``x``
        Lazy if ``x`` is dask-backed; coordinates and attrs kept (attrs gain ``smoothing``).
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise MetricArgumentError(f"sma window must be an integer >= 1, got {window!r}")
    window = int(window)
    if isinstance(x, xr.Dataset):
        return x.map(lambda v: sma(v, window, dim=dim) if dim in v.dims else v, keep_attrs=True)
    if isinstance(x, xr.DataArray):
        if dim not in x.dims:
            raise MetricArgumentError(f"sma: {x.name or 'the array'} has no {dim!r} dimension (it has {list(x.dims)})")
        out = xr.apply_ufunc(
            _forward_mean,
            x,
            input_core_dims=[[dim]],
            output_core_dims=[[dim]],
            kwargs={"window": window},
            dask="parallelized",
            dask_gufunc_kwargs={"allow_rechunk": True},
            output_dtypes=[np.float64],
            keep_attrs=True,
        ).transpose(*x.dims)
        out.attrs["smoothing"] = f"forward moving average, window={window}, edge-padded"
        return out
    return _forward_mean(np.asarray(x), window)


def smoothed_snr(stats, window: int, *, per_layer: bool = False, include_bias: bool = False) -> xr.DataArray:
    """SNR of the smoothed norms, sma(‖μ‖₂) / sma(‖σ‖₂), as the authors draw it (Eq. 8, smoothed).

    Mean and std norms are smoothed separately (:func:`sma`) before the ratio, which is not the
    same as smoothing the SNR curve.

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run or its ``gradient_stats`` group.
    window : int
        Samples per window (see :func:`sma`).
    per_layer, include_bias : bool
        As for :func:`~pinnlog.analyzer.metrics.snr`.

    Returns
    -------
    xarray.DataArray
        ``smoothed_snr`` over ``(step,)`` or ``(step, layer)``.

    References
    ----------
    Eq. 8; the smoothing of the paper's figures.
    """
    norms = gradient_norms(stats, per_layer=per_layer, include_bias=include_bias)
    ratio = safe_divide(sma(norms["mean_norm"], window), sma(norms["std_norm"], window), "smoothed_snr")
    ratio = ratio.rename("smoothed_snr")
    ratio.attrs = {
        "equation": "Eq. 8",
        "long_name": "gradient SNR of the smoothed mean and std norms",
        "smoothing": f"forward moving average, window={window}, edge-padded, on ‖μ‖ and ‖σ‖ separately",
        "selection": norms["mean_norm"].attrs.get("selection", ""),
    }
    return ratio
