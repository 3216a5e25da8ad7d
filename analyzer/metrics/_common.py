"""What every metric shares: taking a run or a group, layer labels, ratios that warn instead of raising."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import numpy as np
import xarray as xr

from pinnlog.analyzer.errors import DegenerateMetricWarning, MetricArgumentError, MissingGroupError
from pinnlog.analyzer.store.format import GROUPS
from pinnlog.analyzer.store.read import require_group

__all__ = ["DegenerateMetricWarning", "MetricArgumentError"]


def group_dataset(obj: xr.Dataset | xr.DataTree, name: str, required: Iterable[str] = ()) -> xr.Dataset:
    """The Dataset of group ``name`` from a run, one of its nodes, or the group's own Dataset.

    A whole run is searched with :func:`~pinnlog.analyzer.store.read.require_group`; a node of the tree
    (``run["gradient_stats"]``) is taken as is, with the run's ``layers``/``layout`` added to its
    attrs. Missing variables raise ``MissingGroupError`` naming the recorder option.
    """
    if isinstance(obj, xr.DataTree):
        if name in obj.children or obj.children:
            ds = require_group(obj, name)
        else:
            ds = obj.to_dataset()
        root_attrs = obj.root.attrs
        extra = {k: root_attrs[k] for k in ("layers", "layout") if k in root_attrs and k not in ds.attrs}
        if extra:
            ds = ds.assign_attrs(extra)
    elif isinstance(obj, xr.Dataset):
        ds = obj
    else:
        raise MetricArgumentError(
            f"expected a run (open_run(...)) or its {name!r} Dataset, got {type(obj).__name__}; pass run or run['" + name + "']"
        )
    option = GROUPS[name].option if name in GROUPS else "?"
    for var in required:
        if var not in ds:
            raise MissingGroupError(f"this run's {name!r} data has no {var!r}; record it with Recorder({option} ...)")
    return ds


def layer_labels(attrs: dict, indices: Iterable[int]) -> dict[str, tuple[str, np.ndarray]]:
    """Coordinates for a ``layer`` dimension: the int index, ``layer_name`` and (when known) ``layer_module``."""
    indices = [int(i) for i in indices]
    known = {}
    for entry in attrs.get("layers") or ():
        if isinstance(entry, dict) and "index" in entry:
            known[int(entry["index"])] = entry
    names = [str(known.get(i, {}).get("name", f"layer_{i}")) for i in indices]
    coords = {"layer": ("layer", np.asarray(indices, dtype=np.int64)), "layer_name": ("layer", np.asarray(names))}
    if known and all("module" in known.get(i, {}) for i in indices):
        coords["layer_module"] = ("layer", np.asarray([str(known[i]["module"]) for i in indices]))
    return coords


_LAYER_VAR = re.compile(r"^layer_(\d+)$")


def layer_index(name: str, fallback: int) -> int:
    """``layer_3`` -> 3; any other name keeps its position."""
    match = _LAYER_VAR.match(name)
    return int(match.group(1)) if match else fallback


def _warn_degenerate(what: str, n_bad: int, n_total: int, reason: str) -> None:
    warnings.warn(
        f"{what}: {n_bad} of {n_total} values are inf/NaN ({reason})",
        DegenerateMetricWarning,
        stacklevel=3,
    )


def _ratio_of_roots(numerator: np.ndarray, denominator: np.ndarray, what: str) -> np.ndarray:
    """sqrt(num) / sqrt(den), elementwise; a zero denominator gives inf (0/0 NaN) and one warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(numerator) / np.sqrt(denominator)
    bad = ~np.isfinite(out)
    if bad.any():
        zero = bad & (denominator == 0)
        reason = (
            "zero denominator" if zero.all() else ("NaN or negative input" if not zero.any() else "zero denominator or NaN input")
        )
        _warn_degenerate(what, int(bad.sum()), out.size, reason)
    return out


def ratio_of_roots(numerator: xr.DataArray, denominator: xr.DataArray, what: str) -> xr.DataArray:
    """Lazy ``sqrt(num) / sqrt(den)`` that warns (at compute time for dask) instead of raising."""
    return xr.apply_ufunc(
        _ratio_of_roots,
        numerator,
        denominator,
        kwargs={"what": what},
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def safe_divide(numerator: xr.DataArray, denominator: xr.DataArray, what: str) -> xr.DataArray:
    """Lazy ``num / den`` that warns (at compute time for dask) instead of raising."""

    def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(num, dtype=np.float64) / den
        bad = ~np.isfinite(out)
        if bad.any():
            _warn_degenerate(what, int(bad.sum()), out.size, "zero denominator or NaN input")
        return out

    return xr.apply_ufunc(_divide, numerator, denominator, dask="parallelized", output_dtypes=[np.float64])


def finish(result: xr.DataArray, name: str, equation: str, long_name: str, **attrs) -> xr.DataArray:
    """Name a result and give it the attrs every metric carries."""
    result = result.rename(name)
    result.attrs = {"equation": equation, "long_name": long_name, **attrs}
    return result


def tensor_selection(stats: xr.Dataset, include_bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the chosen tensors and their layer numbers (numpy: these are per-run constants)."""
    for var in ("layer", "is_bias"):
        if var not in stats:
            raise MissingGroupError(f"this run's 'gradient_stats' data has no {var!r}; it was not written by pinnlog")
    layer = np.asarray(stats["layer"].values)
    chosen = np.ones(layer.shape, bool) if include_bias else ~np.asarray(stats["is_bias"].values, dtype=bool)
    idx = np.flatnonzero(chosen)
    if idx.size == 0:
        raise MetricArgumentError("no weight tensor in this run's layout (only biases); pass include_bias=True")
    return idx, layer[idx]


#: ``gradient_stats/tensor_state`` codes (docs/format.md): trained, untrained (requires grad, not in the
#: optimizer), frozen, gone. Frozen and gone tensors have no gradient at that capture.
_TRAINED, _UNTRAINED = 0, 1


def tensor_mask(stats: xr.Dataset, trained_only: bool) -> tuple[xr.DataArray | None, str]:
    """Which tensors count at each capture, from ``tensor_state``, and the words reports show for it.

    ``trained_only``: the tensors the optimizer trains (held by it and requiring grad); otherwise every
    tensor that has a gradient (frozen and replaced tensors never count). Stores without
    ``tensor_state`` count every tensor.
    """
    if "tensor_state" not in stats:
        return None, "all recorded tensors (this run does not record which ones the optimizer trains)"
    state = stats["tensor_state"]
    if trained_only:
        return state == _TRAINED, "tensors the optimizer trains"
    return (state == _TRAINED) | (state == _UNTRAINED), "every tensor with a gradient, trained by the optimizer or not"


def summed_over_tensors(
    stats: xr.Dataset, var: str, idx: np.ndarray, layers: np.ndarray, per_layer: bool, mask: xr.DataArray | None = None
) -> xr.DataArray:
    """Sum of ``var`` over the chosen tensors: (step,) or (step, layer). NaN anywhere in a sum stays NaN.

    ``mask`` ((step, tensor) bool, :func:`tensor_mask`) drops tensors per capture: they add 0.
    """
    data = stats[var]
    if mask is not None:
        data = data.where(mask, 0.0)
    if not per_layer:
        return data.isel(tensor=idx).sum("tensor", skipna=False)
    unique = np.unique(layers)
    parts = [data.isel(tensor=idx[layers == lay]).sum("tensor", skipna=False) for lay in unique]
    out = xr.concat(parts, dim="layer", coords="minimal", compat="override", join="override")
    out = out.assign_coords(layer_labels(stats.attrs, unique))
    return out.transpose("step", "layer", ...)
