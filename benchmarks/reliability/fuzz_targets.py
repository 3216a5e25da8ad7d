"""Hypothesis drives every metric and the phase detector with random shapes and values.

Each target draws a structurally valid input (the dims a metric documents) of random sizes, from one
step to a few dozen, filled with any float (NaN, +-inf, 0, negative, subnormal, huge), sometimes
dask-backed, with random keyword arguments (including bad ones: ``window=0``, ``bins=-1``, an unknown
binning), then computes the result. The only exceptions allowed are the documented ones: subclasses of
:class:`pinnlog.analyzer.errors.PinnlogError`. Warnings (``DegenerateMetricWarning``) are fine.

``fuzz(name, max_examples)`` runs one target; ``benchmarks/reliability/fuzz.py`` runs 1,000 examples of
each, ``tests/reliability/test_fuzz_subset.py`` 100.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import hypothesis
import numpy as np
import xarray as xr
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer.errors import PinnlogError
from pinnlog.analyzer.phases import detect_phases

SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310, 1e308, -1.0, 1.0]
FLOAT64 = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True, width=64))
FLOAT32 = st.one_of(st.sampled_from(SPECIAL[:5] + [1.0, -1.0]), st.floats(allow_nan=True, allow_infinity=True, width=32))
POSITIVE = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False)


def steps(draw, n: int) -> np.ndarray:
    """Strictly increasing non-negative steps, as a run records them."""
    gaps = draw(arrays(np.int64, n, elements=st.integers(1, 1000)))
    return np.cumsum(gaps) - (gaps[0] if n else 0)


def maybe_dask(draw, ds):
    if draw(st.booleans()) and ds.sizes.get("step", 0) > 0:
        return ds.chunk({"step": draw(st.integers(1, max(1, ds.sizes["step"])))})
    return ds


def gradient_stats(draw) -> xr.Dataset:
    n, t = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    values = {
        v: (("step", "tensor"), draw(arrays(np.float64, (n, t), elements=FLOAT64)))
        for v in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2", "sum_m_hat2", "sum_adam_denom2")
    }
    ds = xr.Dataset(
        {
            **values,
            "numel": ("tensor", draw(arrays(np.int64, t, elements=st.integers(1, 10_000)))),
            "layer": ("tensor", draw(arrays(np.int32, t, elements=st.integers(0, 3)))),
            "is_bias": ("tensor", draw(arrays(bool, t))),
        },
        coords={"step": steps(draw, n)},
    )
    if draw(st.booleans()):
        ds.attrs["layers"] = [{"index": i, "name": f"layer_{i}", "width": 4} for i in range(4)]
    return maybe_dask(draw, ds)


def layout_for(draw, n_param: int) -> list[dict]:
    """A layout of tensors over ``n_param`` parameters (sometimes a wrong one: a documented error)."""
    sizes, left = [], n_param
    while left > 0:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    if draw(st.integers(0, 9)) == 0:
        sizes.append(draw(st.integers(1, 3)))  # one tensor too many for the parameters stored
    layout, offset = [], 0
    for i, size in enumerate(sizes):
        layout.append(
            {
                "name": f"t{i}",
                "shape": [size],
                "numel": size,
                "offset": offset,
                "layer": draw(st.integers(0, 2)),
                "is_bias": draw(st.booleans()),
            }
        )
        offset += size
    return layout


def batch_gradients(draw) -> tuple[xr.Dataset, list[dict]]:
    n, k, p = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 12))
    ds = xr.Dataset(
        {"batch_gradients": (("step", "batch", "param"), draw(arrays(np.float32, (n, k, p), elements=FLOAT32)))},
        coords={"step": steps(draw, n)},
    )
    return maybe_dask(draw, ds), layout_for(draw, p)


def activations(draw) -> xr.Dataset:
    n, probe = draw(st.integers(1, 5)), draw(st.integers(1, 20))
    data = {}
    for layer in range(draw(st.integers(1, 3))):
        width = draw(st.integers(1, 6))
        values = draw(arrays(np.float32, (n, probe, width), elements=st.one_of(FLOAT32, st.floats(-1, 1, width=32))))
        data[f"layer_{layer}"] = (("step", "probe", f"unit_layer_{layer}"), values)
    return maybe_dask(draw, xr.Dataset(data, coords={"step": steps(draw, n)}))


def residuals(draw) -> xr.Dataset:
    n, samples = draw(st.integers(1, 6)), draw(st.integers(1, 30))
    data = {"residual": (("step", "sample"), draw(arrays(np.float32, (n, samples), elements=FLOAT32)))}
    if draw(st.booleans()):
        data["rba_weight"] = (("step", "sample"), draw(arrays(np.float32, (n, samples), elements=FLOAT32)))
    return maybe_dask(draw, xr.Dataset(data, coords={"step": steps(draw, n)}))


def curve(draw, name="snr", max_len=120) -> xr.DataArray:
    n = draw(st.integers(1, max_len))
    values = draw(arrays(np.float64, n, elements=st.one_of(FLOAT64, POSITIVE)))
    return xr.DataArray(values, dims="step", coords={"step": steps(draw, n)}, name=name)


def _eager(result) -> None:
    """Compute a lazy result, as a user printing it would."""
    if isinstance(result, (xr.DataArray, xr.Dataset)):
        result.load()


def _stats_metric(fn):
    def target(draw):
        _eager(fn(gradient_stats(draw), per_layer=draw(st.booleans()), include_bias=draw(st.booleans())))

    return target


def _target_raw(fn):
    def target(draw):
        ds, layout = batch_gradients(draw)
        _eager(fn(ds, layout, per_layer=draw(st.booleans()), include_bias=draw(st.booleans())))

    return target


def _target_consistency(draw):
    raw, layout = batch_gradients(draw)
    # Reductions that agree with the raw rows (a healthy store), or unrelated random ones.
    stats = M.reductions_from_batch_gradients(raw, layout) if draw(st.booleans()) else gradient_stats(draw)
    run = xr.DataTree(
        dataset=xr.Dataset(attrs={"layout": layout}),
        children={"gradient_stats": xr.DataTree(stats), "batch_gradients": xr.DataTree(raw)},
    )
    _eager(M.check_consistency(run))


def _target_information(fn, with_binning):
    def target(draw):
        kwargs = {"bins": draw(st.one_of(st.integers(-1, 40), st.just(30)))}
        if with_binning:
            kwargs["binning"] = draw(st.sampled_from(["relative", "fixed", "absolute", "bogus"]))
            kwargs["width"] = draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
        _eager(fn(activations(draw), **kwargs))

    return target


def _target_sma(draw):
    x = curve(draw) if draw(st.booleans()) else gradient_stats(draw)
    _eager(M.sma(x, draw(st.integers(-2, 30))))


def _target_steps_to_error(draw):
    M.steps_to_error(curve(draw, "test_error"), draw(FLOAT64))


def _target_phases(draw):
    n_phases = draw(st.one_of(st.none(), st.integers(-1, 6)))
    detect_phases(curve(draw, draw(st.sampled_from(["snr", "srr_b", "test_error"])), max_len=300), n_phases)


TARGETS = {
    "snr": _stats_metric(M.snr),
    "srr_b": _stats_metric(M.srr_b),
    "srr_c": _stats_metric(M.srr_c),
    "gradient_norms": _stats_metric(M.gradient_norms),
    "weight_norm": lambda draw: _eager(M.weight_norm(gradient_stats(draw), include_bias=draw(st.booleans()))),
    "smoothed_snr": lambda draw: _eager(
        M.smoothed_snr(gradient_stats(draw), draw(st.integers(-1, 20)), per_layer=draw(st.booleans()))
    ),
    "reductions_from_batch_gradients": lambda draw: _eager(M.reductions_from_batch_gradients(*batch_gradients(draw))),
    "snr_from_batch_gradients": _target_raw(M.snr_from_batch_gradients),
    "srr_b_from_batch_gradients": _target_raw(M.srr_b_from_batch_gradients),
    "check_consistency": _target_consistency,
    "mutual_information": _target_information(M.mutual_information, with_binning=True),
    "binarization": _target_information(M.binarization, with_binning=False),
    "residual_homogeneity": lambda draw: _eager(M.residual_homogeneity(residuals(draw))),
    "relative_l2": lambda draw: _eager(M.relative_l2(curve(draw, "test_error").to_dataset())),
    "steps_to_error": _target_steps_to_error,
    "sma": _target_sma,
    "detect_phases": _target_phases,
}


@dataclass
class FuzzResult:
    """One target's campaign: examples run, how many ended in a documented error, and the first failure."""

    name: str
    examples: int = 0
    documented_errors: int = 0
    failure: str | None = None


# Every campaign's hypothesis settings besides its size: no deadline, no example database, random (not
# derandomised even under hypothesis's CI profile), no blob, no health check (targets may be slow or reject inputs).
CAMPAIGN_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": False,
    "print_blob": False,
    "suppress_health_check": list(HealthCheck),
}


def fuzz(name: str, max_examples: int, seed: int = 0, *, shrink: bool = True) -> FuzzResult:
    """Run ``max_examples`` hypothesis examples of target ``name``; an undocumented exception is the failure.

    ``shrink=False`` reports the first failing example as found, without hypothesis's search for a smaller one
    (the same exception, seconds sooner: for a test that only needs to see that a failure is reported).
    """
    result = FuzzResult(name)
    target = TARGETS[name]
    phases = tuple(Phase) if shrink else tuple(p for p in Phase if p not in (Phase.shrink, Phase.explain))

    @settings(phases=phases, max_examples=max_examples, **CAMPAIGN_SETTINGS)
    @given(st.data())
    def run(data):
        result.examples += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                target(data.draw)
            except PinnlogError:
                result.documented_errors += 1

    try:
        hypothesis.seed(seed)(run)()
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        result.failure = f"{type(exc).__name__}: {first}"
    return result
