"""Shared, torch-free builders of runs whose truth is known.

``synthetic_run(...)`` draws batch gradients, weights, Adam moments, activations, residuals and
scalars in numpy from a seed; ``make_store(tmp_path, ...)`` writes the same data through the real
commit protocol (``pinnlog.analyzer.store.write.RunWriter``) as a format-1 store. A test calls both with
the same arguments, opens the store with the analyzer and compares against a computation of its
own on ``synthetic_run(...).gradients`` etc. Both are session fixtures that return the function::

    def test_snr(make_store, synthetic_run, tmp_path):
        path = make_store(tmp_path, n_steps=5, layers=(2, 8, 1), seed=3, raw=True)
        truth = synthetic_run(n_steps=5, layers=(2, 8, 1), seed=3)
        ...

Arguments (same for both):

- ``n_steps``: number of gradient-statistics captures; capture ``i`` is at step ``2 + 5 i``.
- ``layers``: MLP widths, e.g. ``(2, 8, 8, 1)``: a Linear layer (weight + bias) between each pair.
- ``seed``: everything is a function of it.
- ``n_batches``: K.
- ``raw``: False, True (a raw snapshot at every capture) or k (at captures 0, k, 2k, ...):
  ``batch_gradients``, ``weights`` and (with ``adam``) ``optimizer_state``.
- ``activations``: False, True (64 probe points) or the number of probe points; recorded for every
  layer at the raw-snapshot captures (every capture when ``raw`` is False).
- ``residuals``: False, True (128 samples) or the number of samples; with RBA weights, at the same
  captures as activations.
- ``adam``: store ``sum_m_hat2``/``sum_adam_denom2`` (and ``optimizer_state`` when raw).
- ``close`` (make_store only): False leaves the store ``"recording"``, as a live run looks.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from pinnlog.analyzer.datasets import mlp_layout

sys.path.insert(0, str(Path(__file__).parent / "reliability"))  # corpus_tools: the store edits tests share
from corpus_tools import drop_manifest as _drop_manifest

EXAMPLES = Path(__file__).parents[1] / "examples"

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class SyntheticRun:
    """Everything a synthetic run holds, as numpy arrays (the truth a test compares with)."""

    steps: np.ndarray  # (n_steps,) step of each gradient-statistics capture
    gradients: np.ndarray  # (n_steps, K, P) float32 batch gradients
    weights: np.ndarray  # (n_steps, P) float32
    exp_avg: np.ndarray  # (n_steps, P) float32, Adam's raw first moment
    exp_avg_sq: np.ndarray  # (n_steps, P) float32, raw second moment
    optimizer_step: np.ndarray  # (n_steps,) Adam's t
    layout: list[dict]
    layers: list[dict]
    raw_rows: np.ndarray  # capture rows with a raw snapshot
    probe_rows: np.ndarray  # capture rows with activations / residuals
    activations: dict[str, np.ndarray] = field(default_factory=dict)  # layer_i -> (n_probe_rows, probe, width)
    residual: np.ndarray | None = None  # (n_probe_rows, samples)
    rba_weight: np.ndarray | None = None
    scalar_steps: np.ndarray | None = None  # every step 0..steps[-1]
    loss: np.ndarray | None = None
    test_error: np.ndarray | None = None  # NaN where not measured (every 5th step is)


def _rows(option, n_steps: int) -> np.ndarray:
    if option is False or option is None or option == 0:
        return np.zeros(0, dtype=int)
    stride = 1 if option is True else int(option)
    return np.arange(0, n_steps, stride)


def make_synthetic_run(
    n_steps=6, layers=(2, 8, 8, 1), seed=0, n_batches=4, raw=False, activations=False, residuals=False, adam=True
) -> SyntheticRun:
    rng = np.random.default_rng(seed)
    layout, layer_attrs = mlp_layout(layers)
    n_param = sum(t["numel"] for t in layout)
    steps = 2 + 5 * np.arange(n_steps)
    # Per-tensor scales make layers differ; the signal fades and the noise grows over the captures,
    # so the SNR crosses 1 (as in the paper's fitting -> diffusion).
    tensor_scale = np.concatenate([np.full(t["numel"], 0.5 + rng.random()) for t in layout])
    signal_scale = np.geomspace(3.0, 0.05, n_steps)
    noise_scale = np.geomspace(0.2, 1.0, n_steps)
    signal = rng.normal(size=(n_steps, 1, n_param)) * signal_scale[:, None, None]
    noise = rng.normal(size=(n_steps, n_batches, n_param)) * noise_scale[:, None, None]
    gradients = ((signal + noise) * tensor_scale).astype(np.float32)
    weights = (rng.normal(size=(n_steps, n_param)) * np.linspace(0.5, 2.0, n_steps)[:, None]).astype(np.float32)
    exp_avg = (gradients.mean(axis=1) * 0.5).astype(np.float32)
    # Second moments small at the last capture, so that SRR_C exceeds 1 there (Eq. 13 allows it).
    sq_scale = np.geomspace(1.0, 1e-4, n_steps)[:, None]
    exp_avg_sq = ((gradients.astype(np.float64) ** 2).mean(axis=1) * sq_scale).astype(np.float32)
    raw_rows = _rows(raw, n_steps)
    probe_rows = raw_rows if raw else np.arange(n_steps)
    run = SyntheticRun(
        steps=steps,
        gradients=gradients,
        weights=weights,
        exp_avg=exp_avg,
        exp_avg_sq=exp_avg_sq,
        optimizer_step=steps + 1,
        layout=layout,
        layers=layer_attrs,
        raw_rows=raw_rows,
        probe_rows=probe_rows,
    )
    if activations:
        n_probe = 64 if activations is True else int(activations)
        gain = np.geomspace(0.5, 20.0, n_steps)[probe_rows]  # saturation grows with training
        for layer in layer_attrs:
            pre = rng.normal(size=(len(probe_rows), n_probe, layer["width"]))
            run.activations[layer["name"]] = np.tanh(gain[:, None, None] * pre).astype(np.float32)
    if residuals:
        n_samples = 128 if residuals is True else int(residuals)
        spread = np.geomspace(3.0, 0.1, n_steps)[probe_rows]  # residuals get more homogeneous
        run.residual = (
            rng.normal(size=(len(probe_rows), n_samples))
            * np.exp(spread[:, None] * rng.normal(size=(len(probe_rows), n_samples)))
        ).astype(np.float32)
        run.rba_weight = np.abs(run.residual / np.abs(run.residual).max(axis=1, keepdims=True)).astype(np.float32)
    run.scalar_steps = np.arange(int(steps[-1]) + 1)
    run.loss = np.exp(-run.scalar_steps / 20.0) + 0.01 * rng.random(run.scalar_steps.size)
    test_error = 0.9 * np.exp(-run.scalar_steps / 8.0) + 0.005 * rng.random(run.scalar_steps.size)
    run.test_error = np.where(run.scalar_steps % 5 == 0, test_error, np.nan)
    if not adam:
        run.exp_avg = run.exp_avg_sq = None
    return run


def reductions(gradients: np.ndarray, layout: list[dict]) -> dict[str, np.ndarray]:
    """Per-tensor Σμ², Σσ², Σrms² (float64, ddof=0) of (n, K, P) batch gradients: what the recorder stores."""
    g = gradients.astype(np.float64)
    mu, var, ms = g.mean(axis=1), g.var(axis=1), (g * g).mean(axis=1)
    out = {name: np.zeros((g.shape[0], len(layout))) for name in ("sum_mu2", "sum_sigma2", "sum_rms2")}
    for t, entry in enumerate(layout):
        part = slice(entry["offset"], entry["offset"] + entry["numel"])
        out["sum_mu2"][:, t] = (mu[:, part] ** 2).sum(axis=1)
        out["sum_sigma2"][:, t] = var[:, part].sum(axis=1)
        out["sum_rms2"][:, t] = ms[:, part].sum(axis=1)
    return out


def _per_tensor(values: np.ndarray, layout: list[dict]) -> np.ndarray:
    return np.stack([values[:, e["offset"] : e["offset"] + e["numel"]].sum(axis=1) for e in layout], axis=1)


def gradient_stats_rows(run: SyntheticRun) -> dict[str, np.ndarray]:
    """The ``gradient_stats`` rows the recorder would write for this run."""
    rows = {"step": run.steps.astype(np.int64), **reductions(run.gradients, run.layout)}
    rows["sum_w2"] = _per_tensor(run.weights.astype(np.float64) ** 2, run.layout)
    if run.exp_avg is not None:
        t = run.optimizer_step[:, None].astype(np.float64)
        m_hat = run.exp_avg.astype(np.float64) / (1 - BETAS[0] ** t)
        v_hat = run.exp_avg_sq.astype(np.float64) / (1 - BETAS[1] ** t)
        rows["sum_m_hat2"] = _per_tensor(m_hat**2, run.layout)
        rows["sum_adam_denom2"] = _per_tensor((np.sqrt(v_hat) + EPS) ** 2, run.layout)
    return rows


def write_store(path, run: SyntheticRun, close: bool = True) -> Path:
    """Write ``run`` as a format-1 store, one capture at a time as the recorder's writer does."""
    from pinnlog.analyzer.store.format import activation_dim
    from pinnlog.analyzer.store.write import RunWriter

    attrs = {
        "pinnlog_version": "test",
        "torch_version": "none",
        "device": "cpu",
        "model": "synthetic MLP",
        "optimizer": {
            "name": "Adam" if run.exp_avg is not None else "SGD",
            "hyperparameters": {"lr": 1e-3, "betas": list(BETAS), "eps": EPS},
        },
        "n_batches": int(run.gradients.shape[1]),
        "schedule": "synthetic",
        "raw_schedule": "synthetic",
        "shared_loss": False,
        "config": {"synthetic": True},
        "layout": run.layout,
        "layers": run.layers,
        "activation_layers": sorted(run.activations),
    }
    store = RunWriter(path, attrs, overwrite=True)
    layout = run.layout
    store.set_static(
        "gradient_stats",
        {
            "numel": np.asarray([e["numel"] for e in layout], dtype=np.int64),
            "layer": np.asarray([e["layer"] for e in layout], dtype=np.int32),
            "is_bias": np.asarray([e["is_bias"] for e in layout], dtype=bool),
        },
    )
    stats = gradient_stats_rows(run)
    raw_rows, probe_rows = set(run.raw_rows.tolist()), {r: i for i, r in enumerate(run.probe_rows.tolist())}
    previous = -1
    for row, step in enumerate(run.steps):
        span = slice(previous + 1, int(step) + 1)
        store.append(
            "scalars",
            {
                "step": run.scalar_steps[span],
                "loss": run.loss[span],
                "test_error": run.test_error[span],
                "wall_time": run.scalar_steps[span] * 0.01,
            },
        )
        previous = int(step)
        store.append("gradient_stats", {k: v[row : row + 1] for k, v in stats.items()})
        one = np.asarray([step], dtype=np.int64)
        if row in raw_rows:
            store.append("batch_gradients", {"step": one, "batch_gradients": run.gradients[row : row + 1]})
            store.append("weights", {"step": one, "weights": run.weights[row : row + 1]})
            if run.exp_avg is not None:
                store.append(
                    "optimizer_state",
                    {
                        "step": one,
                        "optimizer_step": run.optimizer_step[row : row + 1].astype(np.int64),
                        "exp_avg": run.exp_avg[row : row + 1],
                        "exp_avg_sq": run.exp_avg_sq[row : row + 1],
                    },
                )
        if row in probe_rows:
            i = probe_rows[row]
            if run.activations:
                values = {name: a[i : i + 1] for name, a in run.activations.items()}
                dims = {name: ("acapture", "probe", activation_dim(name)) for name in values}
                store.append("activations", {"step": one, **values}, dims=dims)
            if run.residual is not None:
                store.append(
                    "residuals", {"step": one, "residual": run.residual[i : i + 1], "rba_weight": run.rba_weight[i : i + 1]}
                )
    if close:
        store.close()
    else:
        store.abandon()  # left as a killed run leaves it: its writer lease stale
    return Path(path) if not isinstance(path, str) or "://" not in path else path


def build_store(tmp_path, *, close=True, name="run.zarr", **truth) -> Path:
    """Write ``make_synthetic_run(**truth)`` under ``tmp_path`` and return the store's path (see the module docstring)."""
    return write_store(Path(tmp_path) / name, make_synthetic_run(**truth), close=close)


@pytest.fixture(scope="session")
def make_store():
    """``make_store(tmp_path, n_steps=6, layers=(2, 8, 8, 1), seed=0, raw=False, activations=False, residuals=False, ...) -> Path``."""
    return build_store


@pytest.fixture(scope="session")
def write_run():
    """``write_run(path_or_url, synthetic_run(...), close=True)``: write given truth anywhere (``memory://`` too)."""
    return write_store


@pytest.fixture(scope="session")
def synthetic_run():
    """``synthetic_run(n_steps=..., layers=..., seed=..., ...) -> SyntheticRun``: the truth behind ``make_store``."""
    return make_synthetic_run


class ComputeCounter:
    """A dask scheduler that counts how often it is asked to compute (then runs the graph synchronously)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        import dask

        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def count_computes():
    """``with count_computes() as counter: ...`` then ``counter.calls``: proves a function stays lazy."""
    import contextlib

    import dask

    @contextlib.contextmanager
    def _counting():
        counter = ComputeCounter()
        with dask.config.set(scheduler=counter):
            yield counter

    return _counting


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args):
    from pinnlog.analyzer.cli import main

    main(list(args))


@pytest.fixture(scope="session")
def cli():
    """``cli("analyze", path, "-o", out, env={...}) -> click.testing.Result``: the real ``pinnlog`` entry point
    (``main``, which maps errors to exit codes) under click's CliRunner, with separate stdout/stderr."""
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(_entry, [str(a) for a in args], env=env)

    return invoke


@pytest.fixture(scope="session")
def drop_manifest():
    """``corpus_tools.drop_manifest``: turn a closed store into one with no chunk manifest.

    Tests that edit arrays through plain zarr use it, so the check they exercise is not the manifest's
    (with the manifest, any such edit is refused as a chunk pinnlog did not write: issue 13).
    """
    return _drop_manifest


@pytest.fixture(scope="session")
def load_example():
    """``load_example(name)``: the module ``examples/<name>.py``, imported from its file (examples/ is no package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
