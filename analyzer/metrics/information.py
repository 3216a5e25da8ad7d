"""Information in the layer activations: binned entropy I(X;T) = H(T) (Eq. 31) and binarization.

Both work on the ``activations`` group: one variable per layer (``layer_<i>``) over
``(step, probe, unit_layer_<i>)``. Each capture is reduced by a numpy kernel that xarray maps over
``step`` (``dask="parallelized"``), so a run larger than memory is read one chunk at a time.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from pinnlog.analyzer.metrics._common import (
    DegenerateMetricWarning,
    MetricArgumentError,
    finish,
    group_dataset,
    layer_index,
    layer_labels,
)

__all__ = ["bin_codes", "binarization", "binned_entropy", "mutual_information"]

BINNINGS = ("relative", "fixed", "absolute")


def bin_codes(activations: np.ndarray, binning: str = "relative", bins: int = 30, width: float | None = None) -> np.ndarray:
    """Integer bin code of every activation of one capture (``probe × unit``), as the smallest unsigned ints.

    ``relative`` (the paper's): neuron j's bins start at its own minimum and share the common
    width w = mean_j(max_j − min_j) / ``bins``; its maximum falls in its last bin (so a neuron with
    range r_j has max(1, ceil(r_j / w)) bins). All neurons constant (w = 0): every code is 0.
    ``fixed``: bins of width ``width`` on a grid anchored at 0 (code = floor(a / width)).
    ``absolute``: ``bins`` equal bins on [-1, 1] (tanh's range); values outside go to the end bins.
    """
    a = np.asarray(activations, dtype=np.float32)
    if binning == "relative":
        lo = a.min(axis=0)
        span = a.max(axis=0) - lo
        w = np.float32(span.mean(dtype=np.float64) / bins)
        if not w > 0:
            return np.zeros(a.shape, dtype=np.uint8)
        last = np.maximum(np.ceil(span / w), 1) - 1
        dtype = _code_dtype(float(last.max()) + 1)
        scaled = np.subtract(a, lo)  # >= 0 exactly, so the integer cast below is floor
        scaled *= np.float32(1.0) / w
        codes = scaled.astype(dtype)
        np.minimum(codes, last.astype(dtype), out=codes)  # a neuron's maximum joins its last bin
        return codes
    if binning == "fixed":
        scaled = np.floor(a / np.float32(width))
        scaled -= scaled.min()  # a common shift changes no row's identity
    else:
        scaled = np.floor((a + np.float32(1.0)) * np.float32(bins / 2.0))
        np.clip(scaled, 0, bins - 1, out=scaled)
    return scaled.astype(_code_dtype(float(scaled.max()) if scaled.size else 0.0))


def _code_dtype(top: float):
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32 if top < 2**32 else np.uint64


def binned_entropy(codes: np.ndarray) -> float:
    """H(T) in bits of the rows of ``codes`` (``probe × unit``): −Σ p log2 p over the distinct rows.

    Each row's bytes are viewed as one fixed-width bytes scalar (numpy ``S`` dtype), so ``np.unique``
    sorts byte strings (memcmp) instead of comparing rows column by column. All rows have the same
    length, so the ``S`` dtype's trailing-NUL padding cannot make two different rows equal.
    """
    codes = np.ascontiguousarray(codes)
    n = codes.shape[0]
    if n == 0:
        return float("nan")
    row_bytes = codes.itemsize * int(np.prod(codes.shape[1:], dtype=np.int64))
    if row_bytes == 0:
        return 0.0
    rows = codes.reshape(n, -1).view(np.dtype(f"S{row_bytes}")).ravel()
    _, counts = np.unique(rows, return_counts=True)
    p = counts / n
    return float(-(p * np.log2(p)).sum() + 0.0)


def _check_binning(binning: str, bins: int, width: float | None) -> None:
    if binning not in BINNINGS:
        raise MetricArgumentError(f"unknown binning {binning!r}; use one of {', '.join(BINNINGS)}")
    if binning == "fixed":
        if width is None or not np.isfinite(width) or width <= 0:
            raise MetricArgumentError("binning='fixed' needs a bin width > 0: pass width=...")
    elif not isinstance(bins, (int, np.integer)) or bins < 1:
        raise MetricArgumentError(f"bins must be a positive integer, got {bins!r}")


def _entropy_per_capture(stack: np.ndarray, binning: str, bins: int, width: float | None, layer: str) -> np.ndarray:
    """(..., probe, unit) -> (...) H(T) per capture; NaN (with a warning) where an activation is not finite."""
    lead = stack.shape[:-2]
    flat = stack.reshape((-1,) + stack.shape[-2:])
    out = np.empty(flat.shape[0])
    for i, capture in enumerate(flat):
        if not np.isfinite(capture).all():
            warnings.warn(
                f"mutual_information: {layer} has non-finite activations; its H(T) is NaN there",
                DegenerateMetricWarning,
                stacklevel=2,
            )
            out[i] = np.nan
            continue
        out[i] = binned_entropy(bin_codes(capture, binning, bins, width))
    return out.reshape(lead)


def _binarized_share(stack: np.ndarray, bins: int, layer: str) -> np.ndarray:
    """(..., probe, unit) -> (...) share of activations in the first or last of each neuron's ``bins`` bins."""
    lead = stack.shape[:-2]
    flat = stack.reshape((-1,) + stack.shape[-2:]).astype(np.float64)
    out = np.empty(flat.shape[0])
    for i, a in enumerate(flat):
        lo, hi = a.min(axis=0), a.max(axis=0)
        with np.errstate(invalid="ignore"):  # inf - inf: such a capture is NaN just below
            span = hi - lo
        varying = span > 0  # constant neurons have no range to bin: left out of the share
        if not np.isfinite(a).all() or not varying.any():
            reason = "non-finite activations" if not np.isfinite(a).all() else "every neuron is constant"
            warnings.warn(f"binarization: {layer} has {reason}; its share is NaN there", DegenerateMetricWarning, stacklevel=2)
            out[i] = np.nan
            continue
        pos = (a[:, varying] - lo[varying]) * (bins / span[varying])
        extreme = (pos < 1) | (pos >= bins - 1)
        out[i] = extreme.mean()
    return out.reshape(lead)


def _layer_variables(ds: xr.Dataset) -> list[str]:
    names = [str(v) for v in ds.data_vars if ds[v].ndim == 3 and "step" in ds[v].dims]
    if not names:
        raise MetricArgumentError("the activations group holds no layer variable over (step, probe, unit_...)")
    return sorted(names, key=lambda v: (layer_index(v, 10**9), v))


def _per_layer(ds: xr.Dataset, kernel, kwargs: dict) -> xr.DataArray:
    names = _layer_variables(ds)
    parts = []
    for name in names:
        var = ds[name]
        probe_dim, unit_dim = [d for d in var.dims if d != "step"]
        if var.chunks is not None:
            var = var.chunk({probe_dim: -1, unit_dim: -1})  # one capture must be whole in one task
        parts.append(
            xr.apply_ufunc(
                kernel,
                var,
                input_core_dims=[[probe_dim, unit_dim]],
                kwargs={**kwargs, "layer": name},
                dask="parallelized",
                output_dtypes=[np.float64],
            ).reset_coords(drop=True)
        )
    out = xr.concat(parts, dim="layer", coords="minimal", join="override")
    out = out.assign_coords({"step": ds["step"]} if "step" in ds.coords else {})
    out = out.assign_coords(layer_labels(ds.attrs, [layer_index(n, i) for i, n in enumerate(names)]))
    out = out.assign_coords(layer_name=("layer", np.asarray(names)))
    return out.transpose("step", "layer")


def mutual_information(activations, *, binning: str = "relative", bins: int = 30, width: float | None = None) -> xr.DataArray:
    """Binned mutual information I(X;T) = H(T) of each layer's activations, in bits (Eq. 31).

    T is deterministic in X, so I(X;T) = H(T) = −Σ p_i log2 p_i over the distinct binned rows
    (one row per probe input). The paper's Eq. 31 omits the minus sign; this is the entropy, ≥ 0,
    at most log2(n_probe) bits.

    Parameters
    ----------
    activations : xarray.Dataset or xarray.DataTree
        The run or its ``activations`` group: ``layer_<i> (step, probe, unit_layer_<i>)``.
    binning : {"relative", "fixed", "absolute"}
        ``relative`` (the paper's): each neuron's bins start at its own minimum, with the common
        width mean range / ``bins``; ``fixed``: width ``width`` on a grid anchored at 0;
        ``absolute``: ``bins`` equal bins on [-1, 1].
    bins : int
        Number of bins (relative, absolute); the paper uses 30.
    width : float, optional
        Bin width for ``binning="fixed"``.

    Returns
    -------
    xarray.DataArray
        ``mutual_information`` in bits over ``(step, layer)``; NaN with a warning where a capture
        holds non-finite activations.

    References
    ----------
    Eq. 31 and Section 3.3 of the paper.
    """
    _check_binning(binning, bins, width)
    ds = group_dataset(activations, "activations")
    out = _per_layer(ds, _entropy_per_capture, {"binning": binning, "bins": int(bins), "width": width})
    return finish(
        out,
        "mutual_information",
        "Eq. 31",
        "mutual information I(X;T) = H(T)",
        units="bit",
        binning=binning,
        bins=int(bins),
        **({"n_samples": int(ds.sizes["probe"])} if "probe" in ds.sizes else {}),
        **({"width": float(width)} if width else {}),
    )


def binarization(activations, *, bins: int = 30) -> xr.DataArray:
    """Share of activations in the first or last bin of their neuron's own range ("binarization").

    Each neuron's range min..max is cut into ``bins`` equal bins; an activation in the first or
    last one counts as saturated. Rule for degenerate neurons: a neuron with exactly two distinct
    values is fully binary (each value is an end of its range); a constant neuron has no range and
    is left out of the share; a layer whose neurons are all constant gives NaN with a
    ``DegenerateMetricWarning``.

    Parameters
    ----------
    activations : xarray.Dataset or xarray.DataTree
        The run or its ``activations`` group.
    bins : int
        Bins per neuron, ≥ 2 (the paper's 30).

    Returns
    -------
    xarray.DataArray
        ``binarization``, a fraction in [0, 1], over ``(step, layer)``.

    References
    ----------
    Section 3.3 and Fig. 11(c, d) of the paper (no equation number).
    """
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise MetricArgumentError(f"binarization needs bins >= 2 (a first and a last bin), got {bins!r}")
    ds = group_dataset(activations, "activations")
    out = _per_layer(ds, _binarized_share, {"bins": int(bins)})
    return finish(
        out, "binarization", "Fig. 11(c, d)", "share of activations in a neuron's first or last bin", units="1", bins=int(bins)
    )
