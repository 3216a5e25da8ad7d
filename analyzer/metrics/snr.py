"""Gradient signal-to-noise ratios from the stored reductions (Eqs. 8, 13, 17) or from raw batch gradients.

A norm over a concatenation of tensors is the root of a sum of squares, so every ratio here is
``sqrt(sum of one reduction) / sqrt(sum of another)`` over the chosen tensors: all of them, the
weights only, or one layer's. See ``docs/metrics.md`` for the equations.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from pinnlog.analyzer.errors import MissingGroupError
from pinnlog.analyzer.metrics._common import (
    MetricArgumentError,
    finish,
    group_dataset,
    ratio_of_roots,
    summed_over_tensors,
    tensor_mask,
    tensor_selection,
)

__all__ = [
    "check_consistency",
    "gradient_norms",
    "reductions_from_batch_gradients",
    "snr",
    "snr_from_batch_gradients",
    "srr_b",
    "srr_b_from_batch_gradients",
    "srr_c",
]

_STATS = "gradient_stats"


def _selection_attr(include_bias: bool) -> str:
    return "weights and biases" if include_bias else "weights only"


def gradient_norms(stats, *, per_layer: bool = False, include_bias: bool = False, trained_only: bool = True) -> xr.Dataset:
    """Norms of the batch mean, batch std and batch rms of the gradient (the parts of Eqs. 8 and 17).

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run (``open_run``) or its ``gradient_stats`` group: ``sum_mu2``, ``sum_sigma2``,
        ``sum_rms2`` over ``(step, tensor)`` and per-tensor ``layer``, ``is_bias``.
    per_layer : bool
        One value per layer (its tensors' norms) instead of the whole network.
    include_bias : bool
        Add the bias tensors (the paper uses weights only).
    trained_only : bool
        Only the tensors the optimizer trains at each capture (default); False: every tensor with a
        gradient. Frozen or replaced tensors never count (``tensor_state``, docs/format.md).

    Returns
    -------
    xarray.Dataset
        ``mean_norm`` = ‖μ‖₂, ``std_norm`` = ‖σ‖₂ (population std over batches), ``rms_norm`` =
        ‖rms‖₂, each ``(step,)`` or ``(step, layer)``.

    References
    ----------
    Eq. 8 (‖μ‖₂ / ‖σ‖₂) and Eq. 17 (SRR_B = ‖μ‖₂ / ‖rms‖₂).
    """
    ds = group_dataset(stats, _STATS, ("sum_mu2", "sum_sigma2", "sum_rms2"))
    idx, layers = tensor_selection(ds, include_bias)
    mask, tensors = tensor_mask(ds, trained_only)
    out = {}
    for name, var, long_name in (
        ("mean_norm", "sum_mu2", "norm of the batch-mean gradient"),
        ("std_norm", "sum_sigma2", "norm of the batch-std gradient"),
        ("rms_norm", "sum_rms2", "norm of the batch-rms gradient"),
    ):
        norm = np.sqrt(summed_over_tensors(ds, var, idx, layers, per_layer, mask))
        out[name] = finish(
            norm,
            name,
            "Eq. 8" if name != "rms_norm" else "Eq. 17",
            long_name,
            selection=_selection_attr(include_bias),
            tensors=tensors,
        )
    return xr.Dataset(out)


def _ratio_over_tensors(
    ds, numerator: str, denominator: str, include_bias: bool, per_layer: bool, name, equation, description, trained_only=True
):
    """√Σ ``numerator`` / √Σ ``denominator`` over the selected tensors (per layer or whole net).

    ``trained_only``: per capture, the tensors the optimizer trains (``tensor_state``); the result's
    ``tensors`` attribute says which set was summed.
    """
    idx, layers = tensor_selection(ds, include_bias)
    mask, tensors = tensor_mask(ds, trained_only)
    ratio = ratio_of_roots(
        summed_over_tensors(ds, numerator, idx, layers, per_layer, mask),
        summed_over_tensors(ds, denominator, idx, layers, per_layer, mask),
        name,
    )
    return finish(ratio, name, equation, description, selection=_selection_attr(include_bias), tensors=tensors)


def snr(stats, *, per_layer: bool = False, include_bias: bool = False, trained_only: bool = True) -> xr.DataArray:
    """Batch-wise gradient signal-to-noise ratio SNR = ‖μ‖₂ / ‖σ‖₂ (Eq. 8).

    μ and σ are the mean and population std (ddof=0) of the K batch gradients, elementwise; the
    norms run over the concatenation of the chosen tensors.

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run or its ``gradient_stats`` group (``sum_mu2``, ``sum_sigma2`` over ``(step, tensor)``).
    per_layer : bool
        One SNR per layer (over that layer's tensors), as in the paper's Fig. A.14.
    include_bias : bool
        Count bias tensors too; the paper uses weight matrices only.
    trained_only : bool
        Only the tensors the optimizer trains at each capture (default; ``tensor_state``); False:
        every tensor with a gradient, untrained ones included. The ``tensors`` attr says which.

    Returns
    -------
    xarray.DataArray
        ``snr`` over ``(step,)`` or ``(step, layer)``; lazy if the input is. Zero noise gives inf
        and 0/0 gives NaN, each with a ``DegenerateMetricWarning`` (at compute time for dask).

    References
    ----------
    Eq. 8 of the paper.

    Examples
    --------
    >>> snr(open_run("run.zarr")).sel(step=1000).item()    # doctest: +SKIP
    """
    ds = group_dataset(stats, _STATS, ("sum_mu2", "sum_sigma2"))
    return _ratio_over_tensors(
        ds, "sum_mu2", "sum_sigma2", include_bias, per_layer, "snr", "Eq. 8", "gradient signal-to-noise ratio", trained_only
    )


def srr_b(stats, *, per_layer: bool = False, include_bias: bool = False, trained_only: bool = True) -> xr.DataArray:
    """Batch signal-to-rms ratio SRR_B = ‖μ‖₂ / ‖rms‖₂, in [0, 1] (Eq. 17).

    rms is the elementwise root mean square of the K batch gradients, so ‖rms‖² = ‖μ‖² + ‖σ‖² and
    SNR = SRR_B / sqrt(1 − SRR_B²) exactly.

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run or its ``gradient_stats`` group (``sum_mu2``, ``sum_rms2`` over ``(step, tensor)``).
    per_layer, include_bias, trained_only : bool
        As for :func:`snr`.

    Returns
    -------
    xarray.DataArray
        ``srr_b`` over ``(step,)`` or ``(step, layer)``; lazy if the input is. All-zero batch gradients
        (‖rms‖ = 0) give NaN with a ``DegenerateMetricWarning`` (at compute time for dask).

    References
    ----------
    Eq. 17 (definition below it), Eqs. 18-19.
    """
    ds = group_dataset(stats, _STATS, ("sum_mu2", "sum_rms2"))
    return _ratio_over_tensors(
        ds,
        "sum_mu2",
        "sum_rms2",
        include_bias,
        per_layer,
        "srr_b",
        "Eq. 17",
        "batch signal-to-rms ratio (gradient homogeneity)",
        trained_only,
    )


def srr_c(stats, *, per_layer: bool = False, include_bias: bool = True, trained_only: bool = True) -> xr.DataArray:
    """Adam's step-wise signal-to-rms ratio SRR_C = ‖m̂‖₂ / ‖√v̂ + ε‖₂ (Eq. 13); may exceed 1.

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run or its ``gradient_stats`` group with ``sum_m_hat2`` and ``sum_adam_denom2``
        (recorded only for Adam/AdamW).
    per_layer : bool
        One value per layer.
    include_bias : bool
        Default True: over all parameters, as in the paper.
    trained_only : bool
        Default True: the tensors the optimizer holds (others have no Adam moments).

    Returns
    -------
    xarray.DataArray
        ``srr_c`` over ``(step,)`` or ``(step, layer)``; lazy if the input is. A NaN in the moments
        summed gives NaN with a ``DegenerateMetricWarning``; ε keeps the denominator above 0.

    References
    ----------
    Eq. 13 (with Adam's bias corrections and ε, Eq. 11).
    """
    ds = group_dataset(stats, _STATS)
    for var in ("sum_m_hat2", "sum_adam_denom2"):
        if var not in ds:
            raise MissingGroupError(
                f"this run has no {var!r}: SRR_C needs Adam's moments, recorded when the optimizer is Adam or AdamW"
            )
    return _ratio_over_tensors(
        ds,
        "sum_m_hat2",
        "sum_adam_denom2",
        include_bias,
        per_layer,
        "srr_c",
        "Eq. 13",
        "Adam step-wise signal-to-rms ratio",
        trained_only,
    )


# -- from the raw batch gradients ------------------------------------------------------------------------


def _layout_arrays(layout: Sequence[Mapping], n_param: int) -> dict[str, np.ndarray]:
    try:
        offset = np.asarray([int(t["offset"]) for t in layout], dtype=np.int64)
        numel = np.asarray([int(t["numel"]) for t in layout], dtype=np.int64)
        layer = np.asarray([int(t["layer"]) for t in layout], dtype=np.int32)
        is_bias = np.asarray([bool(t["is_bias"]) for t in layout], dtype=bool)
    except (KeyError, TypeError, ValueError) as exc:
        raise MetricArgumentError(
            f"layout entries need offset, numel, layer and is_bias ({exc!r}); pass the run's 'layout' attribute"
        ) from None
    if len(layout) == 0 or (offset < 0).any() or (offset + numel > n_param).any():
        raise MetricArgumentError(f"layout does not fit the {n_param} parameters of batch_gradients; pass this run's layout")
    tensor_of_param = np.full(n_param, -1, dtype=np.int64)
    for t, (o, n) in enumerate(zip(offset, numel)):
        tensor_of_param[o : o + n] = t
    return {"numel": numel, "layer": layer, "is_bias": is_bias, "tensor_of_param": tensor_of_param}


def _block_sums(block: np.ndarray, tensor_ids: np.ndarray, n_tensors: int, sub: int = 2048) -> np.ndarray:
    """(s, K, p) float32 gradients -> (s, 3, T) partial Σμ², Σσ², Σrms² per tensor over this param block.

    Two-pass mean and variance in float64 over ``sub`` parameters at a time (a slice that stays
    in cache); Σrms² = Σμ² + Σσ² per parameter, exact up to float64 rounding.
    """
    tensor_ids = tensor_ids.reshape(-1)
    n_rows, k, n_param = block.shape
    mu2 = np.empty((n_rows, n_param))
    sigma2 = np.empty((n_rows, n_param))
    buffer = np.empty((n_rows, k, min(sub, n_param)))
    for start in range(0, n_param, sub):
        part = slice(start, min(start + sub, n_param))
        g = buffer[:, :, : part.stop - start]
        np.copyto(g, block[:, :, part])  # float32 -> float64
        mu = np.add.reduce(g, axis=1)
        mu /= k
        g -= mu[:, None, :]
        mu2[:, part] = mu * mu
        sigma2[:, part] = np.einsum("skp,skp->sp", g, g) / k
    keep = tensor_ids >= 0
    ids = tensor_ids[keep]
    out = np.zeros((n_rows, 3, n_tensors))
    for row in range(n_rows):
        out[row, 0] = np.bincount(ids, weights=mu2[row, keep], minlength=n_tensors)
        out[row, 1] = np.bincount(ids, weights=sigma2[row, keep], minlength=n_tensors)
    out[:, 2] = out[:, 0] + out[:, 1]
    return out


def reductions_from_batch_gradients(batch_gradients, layout: Sequence[Mapping] | None = None) -> xr.Dataset:
    """The per-tensor reductions ``sum_mu2``, ``sum_sigma2``, ``sum_rms2`` recomputed from raw batch gradients.

    Parameters
    ----------
    batch_gradients : xarray.Dataset or xarray.DataTree
        The run or its ``batch_gradients`` group: ``batch_gradients (step, batch, param)``.
    layout : list of dict, optional
        The run's ``layout`` attribute (``offset``, ``numel``, ``layer``, ``is_bias`` per tensor);
        default: taken from the run / group attrs.

    Returns
    -------
    xarray.Dataset
        Same variables and dims as the ``gradient_stats`` group (``(step, tensor)`` sums plus
        ``numel``, ``layer``, ``is_bias``), lazy: one dask task per stored chunk, each reducing
        over ``batch`` (population statistics, ddof=0, two-pass in float64).
    """
    import dask.array as da

    ds = group_dataset(batch_gradients, "batch_gradients", ("batch_gradients",))
    layout = layout if layout is not None else ds.attrs.get("layout")
    if not layout:
        raise MetricArgumentError("no parameter layout: pass layout=run.attrs['layout'] or the whole run")
    grads = ds["batch_gradients"].transpose("step", "batch", "param")
    n_param = grads.sizes["param"]
    lay = _layout_arrays(layout, n_param)
    n_tensors = len(lay["numel"])
    data = grads.data
    if isinstance(data, da.Array):
        data = data.rechunk({1: -1})  # every task needs all K batches of its parameters
        ids = da.from_array(lay["tensor_of_param"], chunks=(data.chunks[2],))
        n_blocks = len(data.chunks[2])
        parts = da.map_blocks(
            functools.partial(_block_sums, n_tensors=n_tensors),
            data,
            ids[None, None, :],
            chunks=(data.chunks[0], (3,), (n_tensors,) * n_blocks),
            dtype=np.float64,
        )
        sums = parts.reshape(data.shape[0], 3, n_blocks, n_tensors).sum(axis=2)
    else:  # in memory already: one block
        sums = _block_sums(np.asarray(data), lay["tensor_of_param"], n_tensors)
    step = grads["step"].values
    out = xr.Dataset(
        {name: (("step", "tensor"), sums[:, j, :]) for j, name in enumerate(("sum_mu2", "sum_sigma2", "sum_rms2"))},
        coords={"step": ("step", step)},
        attrs={k: v for k, v in ds.attrs.items() if k in ("layers", "layout")},
    )
    for name in ("numel", "layer", "is_bias"):
        out[name] = ("tensor", lay[name])
    return out


def snr_from_batch_gradients(batch_gradients, layout=None, *, per_layer: bool = False, include_bias: bool = False):
    """SNR (Eq. 8) computed from a raw ``batch_gradients`` snapshot instead of the stored reductions.

    Parameters
    ----------
    batch_gradients : xarray.Dataset or xarray.DataTree
        The run or its ``batch_gradients`` group (dask, chunked over ``param``).
    layout : list of dict, optional
        The run's ``layout``; default from the attrs.
    per_layer, include_bias : bool
        As for :func:`snr`.

    Returns
    -------
    xarray.DataArray
        ``snr`` over the snapshot steps; equal to :func:`snr` of the reductions to float64 rounding.

    References
    ----------
    Eq. 8.
    """
    return snr(reductions_from_batch_gradients(batch_gradients, layout), per_layer=per_layer, include_bias=include_bias)


def srr_b_from_batch_gradients(batch_gradients, layout=None, *, per_layer: bool = False, include_bias: bool = False):
    """SRR_B (Eq. 17) from a raw ``batch_gradients`` snapshot; see :func:`snr_from_batch_gradients`."""
    return srr_b(reductions_from_batch_gradients(batch_gradients, layout), per_layer=per_layer, include_bias=include_bias)


def _relative_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    return np.where(a == b, 0.0, diff)


def check_consistency(run: xr.DataTree) -> xr.Dataset:
    """Relative differences between the stored reductions and the same ones recomputed from raw snapshots.

    For every step that has both a ``batch_gradients`` snapshot and a ``gradient_stats`` row:
    ``sums_rel_diff`` is the largest relative difference over tensors and over ``sum_mu2``,
    ``sum_sigma2``, ``sum_rms2``; ``snr_rel_diff`` and ``srr_b_rel_diff`` compare the whole-net,
    weights-only ratios. The gaps come from float32 rounding of the raw rows: near 1e-7, larger where
    sigma^2 << mu^2 (a high SNR); ``pinnlog verify`` holds each to its rounding bound instead of one threshold.

    Parameters
    ----------
    run : xarray.DataTree
        A run with both groups.

    Returns
    -------
    xarray.Dataset
        Lazy variables over the common ``step``: ``sums_rel_diff``, ``snr_rel_diff``,
        ``srr_b_rel_diff``, ``snr`` (stored) and ``snr_from_raw``; empty ``step`` if no step is shared.
    """
    stats = group_dataset(run, _STATS, ("sum_mu2", "sum_sigma2", "sum_rms2"))
    raw = reductions_from_batch_gradients(run)
    stats_steps = stats["step"].values
    first_row: dict[int, int] = {}
    for i, s in enumerate(stats_steps):
        first_row.setdefault(int(s), i)
    raw_rows = [i for i, s in enumerate(raw["step"].values) if int(s) in first_row]
    stat_rows = [first_row[int(s)] for s in raw["step"].values[raw_rows]]
    raw = raw.isel(step=raw_rows)
    stats = stats.isel(step=stat_rows)
    n_stats, n_raw = stats.sizes["tensor"], raw.sizes["tensor"]
    if n_stats != n_raw:
        raise MetricArgumentError(f"gradient_stats has {n_stats} tensors but the layout has {n_raw}; the store is inconsistent")

    if "tensor_state" in stats:  # the same tensors on both sides (frozen ones are NaN in both)
        raw["tensor_state"] = (("step", "tensor"), stats["tensor_state"].data)

    def rel(a, b):
        return xr.apply_ufunc(_relative_difference, a, b, dask="parallelized", output_dtypes=[np.float64])

    sums = [rel(stats[v].reset_coords(drop=True), raw[v].reset_coords(drop=True)) for v in ("sum_mu2", "sum_sigma2", "sum_rms2")]
    sums_rel = xr.concat(sums, dim="reduction").max(["reduction", "tensor"], skipna=False)
    stored_snr, raw_snr = snr(stats), snr(raw)
    out = xr.Dataset(
        {
            "sums_rel_diff": sums_rel,
            "snr_rel_diff": rel(stored_snr, raw_snr),
            "srr_b_rel_diff": rel(srr_b(stats), srr_b(raw)),
            "snr": stored_snr,
            "snr_from_raw": raw_snr.rename("snr_from_raw"),
        }
    )
    out.attrs["tolerance"] = 1e-6
    return out
