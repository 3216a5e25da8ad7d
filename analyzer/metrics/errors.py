"""Test error: the relative L2 curve (Eq. 7) and the first step that reaches a target."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pinnlog.analyzer.metrics._common import finish, group_dataset

__all__ = ["relative_l2", "steps_to_error"]


def relative_l2(scalars) -> xr.DataArray:
    """Relative L2 test error ‖f(x;θ) − u_e‖₂ / ‖u_e‖₂ as recorded by ``rec.step(..., test_error=...)``.

    Parameters
    ----------
    scalars : xarray.Dataset or xarray.DataTree
        The run or its ``scalars`` group with ``test_error (step)``.

    Returns
    -------
    xarray.DataArray
        ``relative_l2`` over ``step``, NaN at steps where no test error was given (usually it
        is logged every n steps: ``.dropna("step")`` keeps the measured ones).

    References
    ----------
    Eq. 7 of the paper.
    """
    ds = group_dataset(scalars, "scalars", ("test_error",))
    error = ds["test_error"].reset_coords(drop=True)
    # a run may name its test error (a classifier's "top-1 error"): the recorded attributes win
    own = {k: error.attrs[k] for k in ("long_name", "units") if error.attrs.get(k)}
    result = finish(error, "relative_l2", "Eq. 7", str(own.pop("long_name", "relative L2 test error")))
    return result.assign_attrs(own)


def steps_to_error(test_error, threshold: float) -> int | None:
    """The first step whose test error is <= ``threshold``, or None if none is.

    Unlike the other metrics this returns a number, so it reads the (small) ``test_error`` curve.

    Parameters
    ----------
    test_error : xarray.DataArray, xarray.Dataset or xarray.DataTree
        A curve over ``step`` (``relative_l2(run)``), the ``scalars`` group or the run.
    threshold : float
        Target error, e.g. 0.1 for 10 %.

    Returns
    -------
    int or None
        The step value (not the row index); NaN rows never count.
    """
    if not isinstance(test_error, xr.DataArray):
        test_error = group_dataset(test_error, "scalars", ("test_error",))["test_error"]
    values = np.asarray(test_error.values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(values <= threshold)
    if hits.size == 0:
        return None
    return int(test_error["step"].values[hits[0]])
