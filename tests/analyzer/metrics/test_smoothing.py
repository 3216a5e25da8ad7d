"""sma: the authors' forward moving average with edge padding; smoothed_snr smooths the norms first."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pinnlog.analyzer import open_run
from pinnlog.analyzer.metrics import MetricArgumentError, gradient_norms, sma, smoothed_snr


def forward_sma_loop(x, window):
    """The definition, one value at a time: mean of x[i:i+window], x[-1] repeated past the end."""
    n = len(x)
    return np.array([np.mean([x[min(j, n - 1)] for j in range(i, i + window)]) for i in range(n)])


@settings(max_examples=80, deadline=None)
@given(x=arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e6, 1e6)), window=st.integers(1, 50))
def test_sma_matches_the_definition(x, window):
    np.testing.assert_allclose(sma(x, window), forward_sma_loop(x, window), rtol=1e-9, atol=1e-6)


def test_sma_on_a_dataarray_keeps_coords_and_laziness(count_computes):
    values = np.random.default_rng(0).random((17, 3))
    curve = xr.DataArray(
        values,
        dims=("step", "layer"),
        coords={"step": np.arange(17) * 7, "layer": [0, 1, 2]},
        name="snr",
        attrs={"equation": "Eq. 8"},
    )
    lazy = curve.copy(data=da.from_array(values, chunks=(5, 1)))
    with count_computes() as counter:
        out = sma(lazy, 4)
        assert counter.calls == 0 and isinstance(out.data, da.Array)
    assert out.dims == ("step", "layer") and out.name == "snr" and out.attrs["equation"] == "Eq. 8"
    np.testing.assert_array_equal(out["step"].values, curve["step"].values)
    for j in range(3):
        np.testing.assert_allclose(out.values[:, j], forward_sma_loop(values[:, j], 4), rtol=1e-12)
    xr.testing.assert_identical(sma(curve, 4), out.compute())


def test_sma_window_one_is_identity_and_nan_spreads_backwards_only():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_array_equal(sma(x, 1), x)
    out = sma(x, 2)
    assert np.isnan(out[1]) and np.isnan(out[2]) and out[0] == 1.5 and out[3] == 4.5 and out[4] == 5.0


def test_sma_smooths_a_dataset_along_step_only():
    ds = xr.Dataset({"a": ("step", np.arange(6.0)), "numel": ("tensor", np.arange(3))})
    out = sma(ds, 3)
    np.testing.assert_allclose(out["a"].values, forward_sma_loop(np.arange(6.0), 3))
    np.testing.assert_array_equal(out["numel"].values, np.arange(3))


@pytest.mark.parametrize("window", [0, -2, 2.5, True])
def test_bad_window_is_a_clear_error(window):
    with pytest.raises(MetricArgumentError, match="window"):
        sma(np.arange(4.0), window)


def test_sma_needs_the_dimension():
    with pytest.raises(MetricArgumentError, match="'step'"):
        sma(xr.DataArray(np.arange(3.0), dims="time"), 2)


def test_smoothed_snr_smooths_mean_and_std_before_the_ratio(make_store, synthetic_run, tmp_path):
    args = dict(n_steps=9, layers=(2, 5, 1), seed=13)
    run = open_run(make_store(tmp_path, **args))
    truth = synthetic_run(**args)
    weights = np.concatenate([np.arange(e["offset"], e["offset"] + e["numel"]) for e in truth.layout if not e["is_bias"]])
    g = truth.gradients.astype(np.float64)[..., weights]
    mean_norm = np.linalg.norm(g.mean(axis=1), axis=1)
    std_norm = np.linalg.norm(g.std(axis=1), axis=1)
    want = forward_sma_loop(mean_norm, 3) / forward_sma_loop(std_norm, 3)
    got = smoothed_snr(run, 3)
    np.testing.assert_allclose(got.values, want, rtol=1e-12)
    naive = forward_sma_loop(mean_norm / std_norm, 3)
    assert np.abs(got.values / naive - 1).max() > 1e-3  # smoothing the ratio would be different
    per_layer = smoothed_snr(run, 2, per_layer=True)
    norms = gradient_norms(run, per_layer=True)
    np.testing.assert_allclose(per_layer.values, (sma(norms["mean_norm"], 2) / sma(norms["std_norm"], 2)).values)
