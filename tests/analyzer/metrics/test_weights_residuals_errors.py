"""weight_norm, residual_homogeneity, relative_l2 and steps_to_error against numpy on the synthetic run."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import MissingGroupError
from pinnlog.analyzer.metrics import (
    DegenerateMetricWarning,
    rba_weight_spread,
    relative_l2,
    residual_homogeneity,
    steps_to_error,
    weight_norm,
)

ARGS = dict(n_steps=5, layers=(2, 6, 4, 1), seed=21, residuals=40)


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_store):
    return open_run(make_store(tmp_path_factory.mktemp("wre"), **ARGS))


@pytest.fixture(scope="module")
def truth(synthetic_run):
    return synthetic_run(**ARGS)


@pytest.mark.parametrize("include_bias", [False, True])
def test_weight_norm_is_each_layers_frobenius_norm(run, truth, include_bias):
    got = weight_norm(run, include_bias=include_bias)
    assert got.dims == ("step", "layer") and got.name == "weight_norm"
    w = truth.weights.astype(np.float64)
    for layer in range(3):
        idx = np.concatenate(
            [
                np.arange(e["offset"], e["offset"] + e["numel"])
                for e in truth.layout
                if e["layer"] == layer and (include_bias or not e["is_bias"])
            ]
        )
        np.testing.assert_allclose(got.sel(layer=layer).values, np.linalg.norm(w[:, idx], axis=1), rtol=1e-12)


def test_residual_homogeneity_matches_numpy(run, truth):
    got = residual_homogeneity(run).compute()
    mag = np.abs(truth.residual.astype(np.float64))
    np.testing.assert_allclose(got["cv"].values, mag.std(axis=1) / mag.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(got["max_over_mean"].values, mag.max(axis=1) / mag.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(got["step"].values, truth.steps[truth.probe_rows])
    assert got["cv"].attrs["equation"] == "Eq. 20"


def residual_group(values, lazy=False):
    values = np.asarray(values, dtype=np.float32)
    data = da.from_array(values, chunks=(1, -1)) if lazy else values
    return xr.Dataset({"residual": (("step", "sample"), data)}, coords={"step": np.arange(values.shape[0])})


def test_homogeneous_residuals_have_cv_zero_and_ratio_one():
    signs = np.where(np.arange(64) % 3 == 0, -1.0, 1.0) * 0.25  # same magnitude, mixed signs
    got = residual_homogeneity(residual_group(signs[None], lazy=True))
    np.testing.assert_allclose(got["cv"].values, 0.0, atol=1e-15)
    np.testing.assert_allclose(got["max_over_mean"].values, 1.0, rtol=1e-12)


def test_degenerate_residuals_warn_instead_of_raising():
    values = np.ones((3, 8))
    values[1] = 0.0  # a perfect fit: 0/0
    values[2, 4] = np.nan
    with pytest.warns(DegenerateMetricWarning):
        got = residual_homogeneity(residual_group(values, lazy=True)).compute()
    assert got["cv"].values[0] == 0.0 and np.isnan(got["cv"].values[1:]).all()
    assert np.isnan(got["max_over_mean"].values[1:]).all()


def test_rba_weight_spread_of_residuals_recorded_without_weights_names_the_recorder_option():
    """A residuals group without ``rba_weight`` (``residuals(model)`` returned the residual alone): its docstring's
    MissingGroupError, naming ``residuals=``."""
    with pytest.raises(MissingGroupError, match=r"no 'rba_weight'.*residuals="):
        rba_weight_spread(residual_group(np.ones((3, 8)), lazy=False))


def test_relative_l2_is_the_recorded_test_error(run, truth):
    got = relative_l2(run)
    assert got.name == "relative_l2" and got.attrs["equation"] == "Eq. 7"
    np.testing.assert_array_equal(got["step"].values, truth.scalar_steps)
    np.testing.assert_array_equal(got.values, truth.test_error)


@pytest.mark.parametrize("threshold", [0.5, 0.1, 0.02, 1e-6, 2.0])
def test_steps_to_error_is_the_first_step_at_or_below_threshold(run, truth, threshold):
    expected = None
    for step, error in zip(truth.scalar_steps, truth.test_error):
        if not np.isnan(error) and error <= threshold:
            expected = int(step)
            break
    assert steps_to_error(relative_l2(run), threshold) == expected
    assert steps_to_error(run, threshold) == expected
    assert steps_to_error(run["scalars"].to_dataset(), threshold) == expected


def test_steps_to_error_returns_the_step_value_not_the_row():
    error = xr.DataArray([0.9, np.nan, 0.3, 0.05], coords={"step": [100, 200, 300, 400]}, dims="step")
    assert steps_to_error(error, 0.3) == 300
    assert steps_to_error(error, 0.01) is None
