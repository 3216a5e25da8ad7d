"""What every metric promises: lazy in -> lazy out with no hidden compute, step kept, equation named, lazy = eager."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run

ARGS = dict(n_steps=4, layers=(2, 5, 3, 1), seed=31, raw=True, activations=24, residuals=16)

# metric, group whose steps it keeps, per-layer?
METRICS = [
    (lambda run: M.snr(run), "gradient_stats", False),
    (lambda run: M.snr(run, per_layer=True, include_bias=True), "gradient_stats", True),
    (lambda run: M.srr_b(run, per_layer=True), "gradient_stats", True),
    (lambda run: M.srr_c(run), "gradient_stats", False),
    (lambda run: M.gradient_norms(run, per_layer=True), "gradient_stats", True),
    (lambda run: M.weight_norm(run), "gradient_stats", True),
    (lambda run: M.smoothed_snr(run, 2), "gradient_stats", False),
    (lambda run: M.snr_from_batch_gradients(run, per_layer=True), "batch_gradients", True),
    (lambda run: M.check_consistency(run), "batch_gradients", False),
    (lambda run: M.mutual_information(run), "activations", True),
    (lambda run: M.binarization(run), "activations", True),
    (lambda run: M.residual_homogeneity(run), "residuals", False),
    (lambda run: M.relative_l2(run), "scalars", False),
]
IDS = [
    "snr",
    "snr_layer",
    "srr_b_layer",
    "srr_c",
    "gradient_norms",
    "weight_norm",
    "smoothed_snr",
    "snr_raw",
    "check_consistency",
    "mutual_information",
    "binarization",
    "residual_homogeneity",
    "relative_l2",
]


@pytest.fixture(scope="module")
def path(tmp_path_factory, make_store):
    return make_store(tmp_path_factory.mktemp("contract"), **ARGS)


def _arrays(result):
    return list(result.data_vars.values()) if isinstance(result, xr.Dataset) else [result]


@pytest.mark.parametrize("metric,group,per_layer", METRICS, ids=IDS)
def test_metric_contract(path, metric, group, per_layer, count_computes):
    run = open_run(path)
    with count_computes() as counter:
        result = metric(run)
        assert counter.calls == 0, "the metric computed something while building its result"
    steps = run[group]["step"].values
    for array in _arrays(result):
        assert isinstance(array.data, da.Array), f"{array.name} lost laziness"
        assert array.dims[0] == "step"
        np.testing.assert_array_equal(array["step"].values, steps)
        assert array.attrs.get("equation") or result.attrs.get("tolerance"), array.name
        if per_layer:
            assert array.dims == ("step", "layer")
            assert array["layer"].dtype.kind == "i"
            assert [str(n) for n in array["layer_name"].values] == [f"layer_{i}" for i in array["layer"].values]
    eager = metric(open_run(path).compute())
    for lazy_array, eager_array in zip(_arrays(result), _arrays(eager)):
        assert not isinstance(eager_array.data, da.Array)
        xr.testing.assert_allclose(lazy_array.compute(), eager_array, rtol=1e-12)


# check_consistency compares two groups, so it takes the whole run only
ONE_GROUP = [(m, i) for m, i in zip(METRICS, IDS) if i != "check_consistency"]


@pytest.mark.parametrize("metric,group,per_layer", [m for m, _ in ONE_GROUP], ids=[i for _, i in ONE_GROUP])
def test_metric_accepts_the_group_dataset(path, metric, group, per_layer):
    run = open_run(path)
    by_group = metric(run[group].to_dataset())
    for a, b in zip(_arrays(metric(run)), _arrays(by_group)):
        xr.testing.assert_allclose(a.compute(), b.compute(), rtol=1e-12)
