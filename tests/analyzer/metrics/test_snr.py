"""SNR (Eq. 8), SRR_B (Eq. 17), SRR_C (Eq. 13) against numpy on the synthetic batch gradients."""

from __future__ import annotations

import itertools
import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinnlog.analyzer import open_run
from pinnlog.analyzer.metrics import (
    DegenerateMetricWarning,
    MetricArgumentError,
    check_consistency,
    gradient_norms,
    snr,
    snr_from_batch_gradients,
    srr_b,
    srr_b_from_batch_gradients,
    srr_c,
)

ARGS = dict(n_steps=5, layers=(2, 6, 5, 1), seed=7, raw=True, n_batches=5)


def _parts(layout, include_bias, layer=None):
    """Flat parameter indices of the chosen tensors."""
    chosen = [e for e in layout if (include_bias or not e["is_bias"]) and (layer is None or e["layer"] == layer)]
    return np.concatenate([np.arange(e["offset"], e["offset"] + e["numel"]) for e in chosen])


def numpy_ratios(gradients, layout, include_bias=False, layer=None):
    """SNR and SRR_B straight from the definition: norms of the mean / std / rms vectors (ddof=0)."""
    g = gradients.astype(np.float64)[..., _parts(layout, include_bias, layer)]
    mu, std, rms = g.mean(axis=1), g.std(axis=1), np.sqrt((g**2).mean(axis=1))
    norm = lambda v: np.linalg.norm(v, axis=-1)  # noqa: E731
    return norm(mu) / norm(std), norm(mu) / norm(rms), (norm(mu), norm(std), norm(rms))


@pytest.fixture(scope="module")
def store(tmp_path_factory, make_store):
    return make_store(tmp_path_factory.mktemp("snr"), **ARGS)


@pytest.fixture(scope="module")
def truth(synthetic_run):
    return synthetic_run(**ARGS)


@pytest.mark.parametrize("include_bias", [False, True])
def test_whole_net_snr_and_srr_b_match_numpy(store, truth, include_bias):
    run = open_run(store)
    want_snr, want_srr, (mu, sd, rms) = numpy_ratios(truth.gradients, truth.layout, include_bias)
    got = snr(run, include_bias=include_bias)
    assert got.dims == ("step",) and got.name == "snr" and got.attrs["equation"] == "Eq. 8"
    np.testing.assert_array_equal(got["step"].values, truth.steps)
    np.testing.assert_allclose(got.values, want_snr, rtol=1e-12)
    np.testing.assert_allclose(srr_b(run, include_bias=include_bias).values, want_srr, rtol=1e-12)
    norms = gradient_norms(run, include_bias=include_bias)
    np.testing.assert_allclose(norms["mean_norm"].values, mu, rtol=1e-12)
    np.testing.assert_allclose(norms["std_norm"].values, sd, rtol=1e-12)
    np.testing.assert_allclose(norms["rms_norm"].values, rms, rtol=1e-12)
    # the bias choice must matter on this data, or the test would not tell them apart
    other, _, _ = numpy_ratios(truth.gradients, truth.layout, not include_bias)
    assert np.abs(got.values / other - 1).max() > 1e-3


def test_per_layer_snr_uses_each_layers_weight_matrix(store, truth):
    run = open_run(store)
    got = snr(run, per_layer=True)
    assert got.dims == ("step", "layer")
    np.testing.assert_array_equal(got["layer"].values, [0, 1, 2])
    assert list(got["layer_name"].values) == ["layer_0", "layer_1", "layer_2"]
    for layer in range(3):
        want, want_srr, _ = numpy_ratios(truth.gradients, truth.layout, False, layer)
        np.testing.assert_allclose(got.sel(layer=layer).values, want, rtol=1e-12)
        np.testing.assert_allclose(srr_b(run, per_layer=True).sel(layer=layer).values, want_srr, rtol=1e-12)


def test_eq17_identity_snr_from_srr_b(store):
    run = open_run(store)
    for per_layer in (False, True):
        phi = srr_b(run, per_layer=per_layer).values
        np.testing.assert_allclose(snr(run, per_layer=per_layer).values, phi / np.sqrt(1 - phi**2), rtol=1e-9)
        assert ((phi >= 0) & (phi <= 1)).all()


def test_srr_c_matches_numpy_and_may_exceed_one(store, truth):
    run = open_run(store)
    t = truth.optimizer_step[:, None].astype(np.float64)
    m_hat = truth.exp_avg.astype(np.float64) / (1 - 0.9**t)
    v_hat = truth.exp_avg_sq.astype(np.float64) / (1 - 0.999**t)
    want = np.linalg.norm(m_hat, axis=1) / np.linalg.norm(np.sqrt(v_hat) + 1e-8, axis=1)
    got = srr_c(run)
    assert got.attrs["equation"] == "Eq. 13"
    np.testing.assert_allclose(got.values, want, rtol=1e-12)
    assert got.values.max() > 1  # not clipped to [0, 1]
    weights = _parts(truth.layout, False, 1)
    want_layer = np.linalg.norm(m_hat[:, weights], axis=1) / np.linalg.norm(np.sqrt(v_hat[:, weights]) + 1e-8, axis=1)
    np.testing.assert_allclose(srr_c(run, per_layer=True, include_bias=False).sel(layer=1).values, want_layer, rtol=1e-12)


@pytest.mark.parametrize("per_layer", [False, True])
@pytest.mark.parametrize("include_bias", [False, True])
def test_raw_batch_gradients_agree_with_reductions(store, truth, per_layer, include_bias):
    # 7-parameter chunks split tensors across dask blocks: partial sums must add up across blocks.
    run = open_run(store, chunks={"param": 7})
    assert len(run["batch_gradients"]["batch_gradients"].data.chunks[2]) > 3
    from_raw = snr_from_batch_gradients(run, per_layer=per_layer, include_bias=include_bias)
    stored = snr(run, per_layer=per_layer, include_bias=include_bias)
    np.testing.assert_allclose(from_raw.values, stored.values, rtol=1e-6)
    raw_srr = srr_b_from_batch_gradients(run, per_layer=per_layer, include_bias=include_bias)
    np.testing.assert_allclose(raw_srr.values, srr_b(run, per_layer=per_layer, include_bias=include_bias).values, rtol=1e-6)
    want, _, _ = numpy_ratios(truth.gradients, truth.layout, include_bias, 0 if per_layer else None)
    np.testing.assert_allclose((from_raw.sel(layer=0) if per_layer else from_raw).values, want, rtol=1e-10)


def test_raw_snr_takes_the_group_and_an_explicit_layout(store, truth):
    run = open_run(store)
    group = run["batch_gradients"].to_dataset()
    group.attrs.clear()
    got = snr_from_batch_gradients(group, truth.layout)
    np.testing.assert_allclose(got.values, numpy_ratios(truth.gradients, truth.layout)[0], rtol=1e-10)
    with pytest.raises(MetricArgumentError, match="layout"):
        snr_from_batch_gradients(group)
    with pytest.raises(MetricArgumentError, match="does not fit"):
        snr_from_batch_gradients(group, [{"offset": 0, "numel": 10_000, "layer": 0, "is_bias": False}])


def test_check_consistency_flags_a_tampered_row(make_store, drop_manifest, tmp_path):
    path = drop_manifest(make_store(tmp_path, n_steps=4, layers=(2, 4, 1), seed=3, raw=2))  # edited below
    healthy = check_consistency(open_run(path)).compute()
    np.testing.assert_array_equal(healthy["step"].values, [2, 12])  # captures 0 and 2 have raw snapshots
    for var in ("sums_rel_diff", "snr_rel_diff", "srr_b_rel_diff"):
        assert (healthy[var].values < 1e-6).all(), var
    import zarr

    sigma = zarr.open_group(str(path), mode="r+")["gradient_stats"]["sum_sigma2"]
    row = sigma[2]
    sigma[2] = row * 1.01
    tampered = check_consistency(open_run(path)).compute()
    np.testing.assert_allclose(tampered["sums_rel_diff"].values[1], 0.01 / 1.01, rtol=1e-6)
    assert tampered["sums_rel_diff"].values[0] < 1e-6
    assert tampered["snr_rel_diff"].values[1] > 1e-3


def test_laziness_no_hidden_compute(store, truth, count_computes):
    run = open_run(store)
    with count_computes() as counter:
        results = [
            snr(run),
            snr(run, per_layer=True),
            srr_b(run),
            srr_c(run),
            gradient_norms(run),
            snr_from_batch_gradients(run),
            check_consistency(run),
        ]
        assert counter.calls == 0
        assert all(isinstance(r.data if isinstance(r, xr.DataArray) else r["mean_norm"].data, da.Array) for r in results[:5])
        value = results[0].values
        assert counter.calls == 1
    np.testing.assert_allclose(value, numpy_ratios(truth.gradients, truth.layout)[0], rtol=1e-12)


def test_group_dataset_and_tree_node_give_the_same_result(store):
    run = open_run(store)
    by_run = snr(run, per_layer=True)
    by_node = snr(run["gradient_stats"], per_layer=True)
    by_dataset = snr(run["gradient_stats"].to_dataset(), per_layer=True)
    xr.testing.assert_identical(by_run.compute(), by_node.compute())
    xr.testing.assert_identical(by_run.compute(), by_dataset.compute())


def test_only_biases_is_a_clear_error(store):
    stats = open_run(store)["gradient_stats"].to_dataset()
    only_bias = stats.isel(tensor=np.flatnonzero(stats["is_bias"].values))
    with pytest.raises(MetricArgumentError, match="include_bias=True"):
        snr(only_bias)
    with pytest.raises(MetricArgumentError):
        snr([1, 2, 3])


# -- degenerate input: inf/NaN with a warning, never an exception --------------------------------------


def mlp_layout(widths):
    """Tensors of an MLP (weight then bias per layer) laid out one after another on the param axis."""
    layout, offset = [], 0
    for index, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        for is_bias, numel in ((False, n_in * n_out), (True, n_out)):
            layout.append({"offset": offset, "numel": numel, "layer": index, "is_bias": is_bias})
            offset += numel
    return layout, None


def stats_dataset(gradients, layout, lazy):
    """A gradient_stats Dataset built in the test from (n, K, P) gradients: the same sums the recorder stores."""
    g = gradients.astype(np.float64)
    mu, var, ms = g.mean(axis=1), g.var(axis=1), (g * g).mean(axis=1)
    cols = {"sum_mu2": mu**2, "sum_sigma2": var, "sum_rms2": ms}
    data = {}
    for name, values in cols.items():
        per_tensor = np.stack([values[:, e["offset"] : e["offset"] + e["numel"]].sum(axis=1) for e in layout], axis=1)
        data[name] = (("step", "tensor"), da.from_array(per_tensor, chunks=(2, -1)) if lazy else per_tensor)
    data["layer"] = ("tensor", np.asarray([e["layer"] for e in layout]))
    data["is_bias"] = ("tensor", np.asarray([e["is_bias"] for e in layout]))
    return xr.Dataset(data, coords={"step": np.arange(gradients.shape[0]) * 3})


@st.composite
def gradient_cases(draw):
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    layout, _ = mlp_layout(widths)
    n_param = sum(e["numel"] for e in layout)
    k = draw(st.integers(1, 5))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, k, n_param)).astype(np.float32)
    kind = draw(st.sampled_from(["plain", "zero_variance", "zero", "nan"]))
    row = draw(st.integers(0, n - 1))
    if kind == "zero_variance":  # all batches agree: no noise, SNR = inf
        g[row] = g[row, :1]
    elif kind == "zero":  # no gradient at all: 0/0
        g[row] = 0
    elif kind == "nan":
        g[row, 0, draw(st.integers(0, n_param - 1))] = np.nan
    return g, layout, kind, row


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gradient_cases(), lazy=st.booleans(), per_layer=st.booleans())
def test_degenerate_inputs_give_inf_or_nan_with_a_warning(case, lazy, per_layer):
    g, layout, kind, row = case
    ds = stats_dataset(g, layout, lazy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = snr(ds, per_layer=per_layer, include_bias=True)
        values = got.values
    degenerate = [w for w in caught if issubclass(w.category, DegenerateMetricWarning)]
    assert got.sizes["step"] == g.shape[0]
    layers = sorted({e["layer"] for e in layout})
    want = np.stack(
        [numpy_ratios_nan(g, layout, lay if per_layer else None) for lay in (layers if per_layer else [None])], axis=-1
    )
    if not per_layer:
        want = want[:, 0]
    np.testing.assert_array_equal(np.isnan(values), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(values), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(values[finite], want[finite], rtol=1e-9)
    assert bool(degenerate) == (not finite.all())
    if kind == "zero_variance" and g.shape[1] > 0:
        assert np.isinf(values[row]).any() or np.isnan(values[row]).any()


def numpy_ratios_nan(g, layout, layer):
    g = g.astype(np.float64)[..., _parts(layout, True, layer)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.linalg.norm(g.mean(axis=1), axis=-1) / np.linalg.norm(g.std(axis=1), axis=-1)


def test_lazy_degenerate_warns_at_compute_not_at_call():
    layout, _ = mlp_layout((2, 3, 1))
    g = np.ones((2, 4, sum(e["numel"] for e in layout)), dtype=np.float32)  # identical batches everywhere
    ds = stats_dataset(g, layout, lazy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazy = snr(ds)  # building the graph must not warn (nor compute)
    with pytest.warns(DegenerateMetricWarning, match="zero denominator"):
        values = lazy.values
    assert np.isinf(values).all()


@pytest.mark.parametrize("lazy", [False, True])
def test_srr_b_and_srr_c_degenerate_captures_are_nan_with_a_warning(lazy):
    """What their docstrings promise: SRR_B of all-zero batch gradients is 0/0 = NaN, SRR_C of a NaN moment is NaN,
    each with a DegenerateMetricWarning; the other captures keep their values (Eq. 17, Eq. 13)."""
    layout, _ = mlp_layout((2, 3, 1))
    g = np.random.default_rng(3).normal(size=(3, 4, sum(e["numel"] for e in layout))).astype(np.float32)
    g[1] = 0  # no gradient at all at the second capture
    ds = stats_dataset(g, layout, lazy)
    m_hat2, denom2 = np.full(ds["sum_mu2"].shape, 0.25), np.full(ds["sum_mu2"].shape, 4.0)
    m_hat2[2, 0] = np.nan  # a NaN first moment at the third capture
    ds = ds.assign(sum_m_hat2=(("step", "tensor"), m_hat2), sum_adam_denom2=(("step", "tensor"), denom2))
    with pytest.warns(DegenerateMetricWarning, match="zero denominator"):
        b = srr_b(ds, include_bias=True).values
    with np.errstate(invalid="ignore"):
        want_b = numpy_ratios(g, layout, include_bias=True)[1]
    assert np.isnan(b[1]) and np.isnan(want_b[1])
    np.testing.assert_allclose(b[[0, 2]], want_b[[0, 2]], rtol=1e-9)
    with pytest.warns(DegenerateMetricWarning, match="NaN"):
        c = srr_c(ds).values
    assert np.isnan(c[2])
    np.testing.assert_allclose(c[:2], np.sqrt(0.25 / 4.0), rtol=1e-12)  # every tensor: sqrt(sum m^2 / sum denom^2)
