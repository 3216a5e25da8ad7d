"""Mutual information (Eq. 31) and binarization: closed forms and an independent numpy/Counter reference."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from pinnlog.analyzer import open_run
from pinnlog.analyzer.metrics import DegenerateMetricWarning, MetricArgumentError, binarization, mutual_information
from pinnlog.analyzer.metrics.information import bin_codes, binned_entropy


def activations_dataset(layers: dict[str, np.ndarray], lazy=False) -> xr.Dataset:
    """An activations group over (step, probe, unit_<layer>) from arrays (step, probe, width)."""
    data = {}
    for name, values in layers.items():
        values = da.from_array(values, chunks=(1, -1, -1)) if lazy else values
        data[name] = (("step", "probe", f"unit_{name}"), values)
    n_steps = next(iter(layers.values())).shape[0]
    return xr.Dataset(data, coords={"step": 10 * np.arange(n_steps) + 4})


def entropy_of_rows(rows) -> float:
    """H in bits of a list of hashable rows, by counting (the reference)."""
    counts = np.asarray(list(Counter(rows).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def reference_mi(a: np.ndarray, binning: str, bins: int = 30, width: float | None = None) -> float:
    """Eq. 31 written plainly in float64: bin every neuron, count distinct tuples."""
    a = a.astype(np.float64)
    if binning == "relative":
        lo, hi = a.min(axis=0), a.max(axis=0)
        w = (hi - lo).mean() / bins
        if w == 0:
            return 0.0
        n_bins = np.maximum(np.ceil((hi - lo) / w), 1)
        codes = np.minimum(np.floor((a - lo) / w), n_bins - 1)
    elif binning == "fixed":
        codes = np.floor(a / width)
    else:
        codes = np.clip(np.floor((a + 1) / 2 * bins), 0, bins - 1)
    return entropy_of_rows([tuple(r) for r in codes.astype(np.int64)])


# -- closed forms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 5, 8, 30])
@pytest.mark.parametrize("binning", ["relative", "absolute", "fixed"])
def test_m_equally_likely_distinct_rows_carry_log2_m_bits(m, binning):
    # m patterns on a grid that every binning separates, each repeated 4 times, shuffled.
    levels = np.linspace(-0.95, 0.95, m) if m > 1 else np.zeros(1)
    rows = np.stack([levels, levels[::-1], np.roll(levels, 1)], axis=1)  # (m, 3)
    a = np.repeat(rows, 4, axis=0)[np.random.default_rng(m).permutation(4 * m)]
    ds = activations_dataset({"layer_0": a[None].astype(np.float32)})
    got = mutual_information(ds, binning=binning, width=0.01 if binning == "fixed" else None)
    np.testing.assert_allclose(got.values[0, 0], math.log2(m), atol=1e-12)


@pytest.mark.parametrize("binning", ["relative", "absolute", "fixed"])
def test_a_constant_layer_carries_no_information(binning):
    a = np.full((2, 50, 6), 0.3, dtype=np.float32)
    got = mutual_information(activations_dataset({"layer_0": a}), binning=binning, width=0.1)
    np.testing.assert_array_equal(got.values, 0.0)


def test_a_plus_minus_one_layer_is_fully_binary_and_holds_its_sign_patterns():
    rng = np.random.default_rng(0)
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1).T  # all 16 patterns once
    a = np.repeat(signs, 5, axis=0)[rng.permutation(80)][None].astype(np.float32)
    ds = activations_dataset({"layer_0": a})
    np.testing.assert_array_equal(binarization(ds).values, 1.0)
    np.testing.assert_allclose(mutual_information(ds).values, 4.0, atol=1e-12)
    np.testing.assert_allclose(mutual_information(ds, binning="absolute").values, 4.0, atol=1e-12)


def test_binarization_of_values_at_bin_centres():
    # each neuron holds one value at the centre of each of its 30 bins: 2 of 30 are extreme
    bins = 30
    centres = (np.arange(bins) + 0.5) / bins
    a = np.stack([centres * 2 - 1, centres * 0.5 + 3.0], axis=1)
    a = np.vstack([a, [[-1.0, 3.0], [1.0, 3.5]]])  # the ends fix each neuron's range to the bin grid
    ds = activations_dataset({"layer_0": a[None]})
    expected = (2 * 2 + 4) / a.size  # two centre values per neuron + the four end values
    np.testing.assert_allclose(binarization(ds, bins=bins).values, expected, rtol=1e-12)


def test_binarization_guard_constant_neurons_left_out_and_all_constant_is_nan():
    binary = np.tile([[-1.0], [1.0]], (10, 1))
    mixed = np.hstack([binary, np.full((20, 1), 0.2)])  # a constant neuron beside a binary one
    ds = activations_dataset({"layer_0": mixed[None], "layer_1": np.full((1, 20, 3), 0.5)})
    with pytest.warns(DegenerateMetricWarning, match="every neuron is constant"):
        got = binarization(ds).values
    assert got[0, 0] == 1.0
    assert np.isnan(got[0, 1])


# -- against the reference -------------------------------------------------------------------------------


@pytest.mark.parametrize("binning,width", [("relative", None), ("absolute", None), ("fixed", 0.05)])
def test_mutual_information_of_a_store_matches_the_reference(make_store, synthetic_run, tmp_path, binning, width):
    args = dict(n_steps=4, layers=(2, 7, 5, 1), seed=9, activations=200)
    run = open_run(make_store(tmp_path, **args))
    truth = synthetic_run(**args)
    got = mutual_information(run, binning=binning, width=width, bins=12)
    assert got.dims == ("step", "layer") and got.attrs["equation"] == "Eq. 31" and got.attrs["units"] == "bit"
    np.testing.assert_array_equal(got["step"].values, truth.steps)
    assert list(got["layer_name"].values) == ["layer_0", "layer_1", "layer_2"]
    for layer in range(3):
        acts = truth.activations[f"layer_{layer}"]
        want = [reference_mi(acts[s], binning, bins=12, width=width) for s in range(acts.shape[0])]
        np.testing.assert_allclose(got.sel(layer=layer).values, want, atol=1e-12)
    assert got.values.max() <= math.log2(200) + 1e-12
    assert np.ptp(got.values) > 0.1  # the data has structure the reference must match, not constants


def test_binarization_of_a_store_matches_a_loop(make_store, synthetic_run, tmp_path):
    args = dict(n_steps=4, layers=(2, 6, 1), seed=2, activations=50)
    got = binarization(open_run(make_store(tmp_path, **args)), bins=10)
    truth = synthetic_run(**args)
    for layer in (0, 1):
        acts = truth.activations[f"layer_{layer}"].astype(np.float64)
        for s in range(acts.shape[0]):
            extreme = total = 0
            for j in range(acts.shape[2]):
                col = acts[s, :, j]
                lo, hi = col.min(), col.max()
                if hi == lo:
                    continue
                width = (hi - lo) / 10
                extreme += int(((col < lo + width) | (col >= hi - width)).sum())
                total += col.size
            assert got.sel(layer=layer).values[s] == pytest.approx(extreme / total, abs=1e-12)
    assert np.all(np.diff(got.sel(layer=0).values) > 0)  # saturation grows in the synthetic run


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 60),
    width=st.integers(1, 40),
    top=st.sampled_from([1, 3, 255, 256, 70_000]),
    seed=st.integers(0, 2**16),
)
def test_packed_row_entropy_equals_counting_tuples(n, width, top, seed):
    codes = np.random.default_rng(seed).integers(0, top + 1, size=(n, width))
    codes = codes.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    assert binned_entropy(codes) == pytest.approx(entropy_of_rows([tuple(r) for r in codes]), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 40),
    width=st.integers(1, 8),
    bins=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
)
def test_relative_codes_stay_inside_each_neurons_bins(n, width, bins, seed, scale):
    a = (np.random.default_rng(seed).normal(size=(n, width)) * scale).astype(np.float32)
    codes = bin_codes(a, "relative", bins).astype(np.int64)
    assert codes.min() >= 0
    span = a.max(axis=0) - a.min(axis=0)
    w = np.float32(span.mean(dtype=np.float64) / bins)
    if w > 0:
        assert (codes.max(axis=0) <= np.maximum(np.ceil(span / w), 1) - 1).all()
        assert (codes[a.argmin(axis=0), np.arange(width)] == 0).all()  # each minimum opens bin 0


# -- degenerate input and arguments --------------------------------------------------------------------


def test_non_finite_activations_give_nan_with_a_warning():
    a = np.random.default_rng(1).normal(size=(3, 20, 4)).astype(np.float32)
    a[1, 3, 2] = np.nan
    ds = activations_dataset({"layer_0": a})
    with pytest.warns(DegenerateMetricWarning):
        mi = mutual_information(ds).values
    with pytest.warns(DegenerateMetricWarning):
        share = binarization(ds).values
    assert np.isnan(mi[1, 0]) and np.isfinite(mi[[0, 2], 0]).all()
    assert np.isnan(share[1, 0]) and np.isfinite(share[[0, 2], 0]).all()


def test_lazy_in_lazy_out_without_compute(count_computes):
    rng = np.random.default_rng(4)
    layers = {"layer_0": np.tanh(rng.normal(size=(3, 40, 5))), "layer_1": np.tanh(rng.normal(size=(3, 40, 2)))}
    eager = activations_dataset(layers)
    lazy = activations_dataset(layers, lazy=True)
    with count_computes() as counter:
        mi, share = mutual_information(lazy), binarization(lazy)
        assert counter.calls == 0
        assert isinstance(mi.data, da.Array) and isinstance(share.data, da.Array)
        xr.testing.assert_identical(mi.compute(), mutual_information(eager))
        xr.testing.assert_identical(share.compute(), binarization(eager))


def test_bad_arguments_are_one_line_errors():
    ds = activations_dataset({"layer_0": np.zeros((1, 4, 2))})
    for kwargs, fragment in (
        ({"binning": "quantile"}, "unknown binning"),
        ({"binning": "fixed"}, "width"),
        ({"bins": 0}, "bins"),
    ):
        with pytest.raises(MetricArgumentError, match=fragment) as info:
            mutual_information(ds, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(MetricArgumentError, match="bins >= 2"):
        binarization(ds, bins=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mutual_information(ds).values[0, 0] == 0.0  # constant layer: no warning, just 0 bits
