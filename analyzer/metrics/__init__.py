"""The paper's metrics as pure functions: an xarray object in (the run or one group), an xarray object out.

Every function accepts the whole run (``open_run(...)``) or the group's Dataset, keeps the ``step``
coordinate, adds a ``layer`` dimension (int index + ``layer_name``) where it is per layer, stays
lazy on dask input, and names the paper's equation in the result's ``equation`` attribute.
Degenerate inputs give inf/NaN with a :class:`DegenerateMetricWarning`, never an exception.
``docs/metrics.md`` has every equation and a notebook example.
"""

from pinnlog.analyzer.metrics._common import DegenerateMetricWarning, MetricArgumentError
from pinnlog.analyzer.metrics.errors import relative_l2, steps_to_error
from pinnlog.analyzer.metrics.information import binarization, mutual_information
from pinnlog.analyzer.metrics.residuals import rba_weight_spread, residual_homogeneity
from pinnlog.analyzer.metrics.smoothing import sma, smoothed_snr
from pinnlog.analyzer.metrics.snr import (
    check_consistency,
    gradient_norms,
    reductions_from_batch_gradients,
    snr,
    snr_from_batch_gradients,
    srr_b,
    srr_b_from_batch_gradients,
    srr_c,
)
from pinnlog.analyzer.metrics.weights import weight_norm

__all__ = [
    "DegenerateMetricWarning",
    "MetricArgumentError",
    "binarization",
    "check_consistency",
    "gradient_norms",
    "mutual_information",
    "rba_weight_spread",
    "reductions_from_batch_gradients",
    "relative_l2",
    "residual_homogeneity",
    "sma",
    "smoothed_snr",
    "snr",
    "snr_from_batch_gradients",
    "srr_b",
    "srr_b_from_batch_gradients",
    "srr_c",
    "steps_to_error",
    "weight_norm",
]
