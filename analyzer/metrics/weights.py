"""Weight norms per layer, from the stored ``sum_w2`` reductions."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pinnlog.analyzer.metrics._common import finish, group_dataset, summed_over_tensors, tensor_selection

__all__ = ["weight_norm"]


def weight_norm(stats, *, include_bias: bool = False) -> xr.DataArray:
    """Frobenius norm ‖θ_l‖₂ of each layer's parameters over training.

    Parameters
    ----------
    stats : xarray.Dataset or xarray.DataTree
        The run or its ``gradient_stats`` group (``sum_w2 (step, tensor)``, ``layer``, ``is_bias``).
    include_bias : bool
        Count the layer's bias vector too (default: the weight matrix only).

    Returns
    -------
    xarray.DataArray
        ``weight_norm`` over ``(step, layer)``.

    References
    ----------
    Fig. 11(e, f) of the paper (‖θ‖ per layer; no equation number).
    """
    ds = group_dataset(stats, "gradient_stats", ("sum_w2",))
    idx, layers = tensor_selection(ds, include_bias)
    norm = np.sqrt(summed_over_tensors(ds, "sum_w2", idx, layers, per_layer=True))
    return finish(
        norm,
        "weight_norm",
        "Fig. 11(e, f)",
        "weight norm per layer",
        selection="weights and biases" if include_bias else "weights only",
    )
