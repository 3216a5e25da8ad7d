"""The store a recording leaves: plain xarray opens every group; attrs, activations and residuals are right."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from recorder_problems import AllenCahn, TanhMLP

torch = pytest.importorskip("torch")
from torch import nn

from pinnlog.analyzer import open_run
from pinnlog.analyzer.store.format import GROUPS
from pinnlog.recorder import Recorder, every


def _record_everything(path, model, problem, n_steps=6, rba=False, **options):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    weights = torch.linspace(0.1, 1.0, problem.points.shape[0])
    residuals = (lambda m: (problem.residuals(m), weights)) if rba else problem.residuals
    expected = {"residual": {}, "activations": {}}
    with problem.recorder(
        path,
        model,
        optimizer,
        schedule=every(2),
        raw_schedule=every(3),
        residuals=residuals,
        config={"pde": "allen-cahn", "eps": 1e-4},
        **options,
    ) as rec:
        for step in range(n_steps):
            loss = problem.train_step(model, optimizer)
            expected["residual"][step] = problem.residuals(model).numpy()
            expected["activations"][step] = _hidden_activations(model, problem.points)
            rec.step(step, loss=loss, lr=optimizer.param_groups[0]["lr"])
    return expected


def _hidden_activations(model, x) -> list[np.ndarray]:
    """tanh of every hidden Linear, computed by hand from the weights."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    out = []
    with torch.no_grad():
        for layer in linears[:-1]:
            x = torch.tanh(x @ layer.weight.T + layer.bias)
            out.append(x.numpy().copy())
    return out


def test_plain_xarray_opens_every_group_with_format_dims(run_path):
    problem = AllenCahn(n_batches=3, batch_size=6)
    torch.manual_seed(0)
    _record_everything(run_path, TanhMLP([2, 8, 8, 1]), problem)

    tree = xr.open_datatree(run_path, engine="zarr")
    assert set(tree.children) == set(GROUPS)
    for name, spec in GROUPS.items():
        ds = xr.open_zarr(run_path, group=name)
        assert ds.attrs["n_committed"] == ds.sizes[spec.axis] > 0  # close() trimmed to the committed rows
        for var, (dims, dtype) in spec.variables.items():
            if var in ds and dtype == "string":  # format 1.1's name coordinates
                assert ds[var].dims == dims and ds[var].dtype.kind in "TUO", (name, var)
            elif var in ds:
                assert ds[var].dims == dims and ds[var].dtype == np.dtype(dtype), (name, var)
        assert set(tree[name].to_dataset().data_vars) == set(ds.data_vars)
    assert xr.open_zarr(run_path, group="activations")["layer_1"].dims == ("acapture", "probe", "unit_layer_1")


def test_plain_xarray_selects_a_tensor_by_name(run_path):
    """Format 1.1: ``gradient_stats`` carries ``tensor`` and ``layer_name`` coordinates from the model's own names."""
    problem = AllenCahn(n_batches=3, batch_size=6)
    torch.manual_seed(0)
    model = TanhMLP([2, 8, 5, 1])
    _record_everything(run_path, model, problem, n_steps=4)

    stats = xr.open_zarr(run_path, group="gradient_stats")
    named = [n for n, _ in model.named_parameters()]
    assert [str(t) for t in stats["tensor"].values] == named
    assert [str(t) for t in stats["layer_name"].values] == ["layer_0", "layer_0", "layer_1", "layer_1", "layer_2", "layer_2"]
    ours = open_run(run_path)["gradient_stats"]
    for i, name in enumerate(named):
        np.testing.assert_array_equal(stats.sel(tensor=name)["sum_mu2"].values, ours["sum_mu2"].values[:, i])
    assert open_run(run_path).attrs["pinnlog_format_minor"] == 2  # 1.2: name coordinates (1.1) and checksums


def test_root_attributes_describe_the_run(run_path):
    problem = AllenCahn(n_batches=3, batch_size=6)
    torch.manual_seed(0)
    model = TanhMLP([2, 8, 5, 1])
    _record_everything(run_path, model, problem, n_steps=2)

    attrs = open_run(run_path).attrs
    assert attrs["status"] == "complete" and attrs["pinnlog_format"] == 1
    assert attrs["torch_version"] == torch.__version__ and attrs["device"] == "cpu"
    assert attrs["n_batches"] == 3 and attrs["shared_loss"] is True
    assert attrs["config"] == {"pde": "allen-cahn", "eps": 1e-4}
    assert attrs["schedule"] == "every(2)" and attrs["raw_schedule"] == "every(3)"
    assert attrs["optimizer"]["name"] == "Adam" and attrs["optimizer"]["hyperparameters"]["lr"] == 1e-2
    json.dumps(attrs["optimizer"])
    named = list(model.named_parameters())
    assert [t["name"] for t in attrs["layout"]] == [n for n, _ in named]
    assert [t["shape"] for t in attrs["layout"]] == [list(p.shape) for _, p in named]
    assert [t["offset"] for t in attrs["layout"]] == np.cumsum([0] + [p.numel() for _, p in named])[:-1].tolist()
    assert [t["is_bias"] for t in attrs["layout"]] == [n.endswith("bias") for n, _ in named]
    assert [t["layer"] for t in attrs["layout"]] == [0, 0, 1, 1, 2, 2]
    assert [(la["name"], la["module"], la["width"]) for la in attrs["layers"]] == [
        ("layer_0", "layers.0", 8),
        ("layer_1", "layers.1", 5),
        ("layer_2", "layers.2", 1),
    ]
    assert attrs["activation_layers"] == ["layer_0", "layer_1"]


@pytest.mark.parametrize("activation", ["torch.tanh in forward", "nn.Tanh module"])
def test_default_activations_are_every_hidden_layer_after_its_activation(run_path, activation):
    problem = AllenCahn(n_batches=2, batch_size=6)
    torch.manual_seed(0)
    if activation == "nn.Tanh module":
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 1))
    else:
        model = TanhMLP([2, 8, 6, 1])
    expected = _record_everything(run_path, model, problem, n_steps=4)

    acts = open_run(run_path)["activations"].to_dataset()
    assert acts["step"].values.tolist() == [0, 3]
    assert sorted(acts.data_vars) == ["layer_0", "layer_1"]
    for step in (0, 3):
        for i, want in enumerate(expected["activations"][step]):
            np.testing.assert_allclose(acts[f"layer_{i}"].sel(step=step).values, want, rtol=1e-6, atol=1e-7)


def test_layers_option_hooks_named_module_outputs(run_path):
    problem = AllenCahn(n_batches=2, batch_size=6)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 1))
    _record_everything(run_path, model, problem, n_steps=1, layers=["1", "2"])

    acts = open_run(run_path)["activations"].to_dataset()
    x = problem.points
    with torch.no_grad():
        after_tanh = torch.tanh(model[0](x))
        pre_activation = model[2](after_tanh)
    np.testing.assert_allclose(acts["layer_0"].isel(step=0).values, after_tanh.numpy(), rtol=1e-6)  # module "1"
    np.testing.assert_allclose(acts["layer_1"].isel(step=0).values, pre_activation.numpy(), rtol=1e-6)  # module "2"


def test_residuals_and_rba_weights_are_stored_per_sample(run_path):
    problem = AllenCahn(n_batches=2, batch_size=6)
    torch.manual_seed(0)
    expected = _record_everything(run_path, TanhMLP([2, 8, 1]), problem, n_steps=4, rba=True)

    res = open_run(run_path)["residuals"].to_dataset()
    assert res["step"].values.tolist() == [0, 3]
    for step in (0, 3):
        np.testing.assert_allclose(res["residual"].sel(step=step).values, expected["residual"][step], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(res["rba_weight"].sel(step=step).values, np.linspace(0.1, 1.0, 12), rtol=1e-6)


def test_scalars_keep_every_step_and_missing_values_are_nan(run_path):
    model = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    with Recorder(
        run_path, model, torch.optim.SGD(model.parameters(), lr=0.1), lambda m, b: m(x[b::2]).mean(), 2, schedule=None
    ) as rec:
        for step in range(0, 30, 3):
            extra = {"test_error": torch.tensor(step / 10)} if step % 2 == 0 else {}
            rec.step(step, loss=float(step), **extra)
    scalars = open_run(run_path)["scalars"].to_dataset()
    steps = list(range(0, 30, 3))
    assert scalars["step"].values.tolist() == steps
    np.testing.assert_array_equal(scalars["loss"].values, steps)
    want = [s / 10 if s % 2 == 0 else np.nan for s in steps]
    np.testing.assert_allclose(scalars["test_error"].values, want, rtol=1e-7)
    assert np.all(np.diff(scalars["wall_time"].values) >= 0)
    assert "gradient_stats" not in open_run(run_path).children  # schedule=None: nothing captured


def test_exit_by_exception_marks_the_run_interrupted_and_keeps_its_steps(run_path):
    model = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    with (
        pytest.raises(KeyboardInterrupt),
        Recorder(
            run_path, model, torch.optim.SGD(model.parameters(), lr=0.1), lambda m, b: m(x[b::2]).mean(), 2, schedule=every(2)
        ) as rec,
    ):
        for step in range(5):
            rec.step(step, loss=step)
        raise KeyboardInterrupt
    run = open_run(run_path)
    assert run.attrs["status"] == "interrupted"
    assert run["scalars"]["step"].values.tolist() == [0, 1, 2, 3, 4]
    assert run["gradient_stats"]["step"].values.tolist() == [0, 2, 4]


def test_a_live_store_reads_as_a_consistent_prefix(run_path):
    model = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    rec = Recorder(
        run_path, model, torch.optim.SGD(model.parameters(), lr=0.1), lambda m, b: m(x[b::2]).mean(), 2, schedule=every(1)
    )
    for step in range(4):
        rec.step(step, loss=step)
    rec.flush()
    run = open_run(run_path)
    assert run.attrs["status"] == "recording"
    assert run["scalars"]["loss"].values.tolist() == [0, 1, 2, 3]
    assert run["gradient_stats"]["step"].values.tolist() == [0, 1, 2, 3]
    rec.close()
    assert open_run(run_path).attrs["status"] == "complete"


def test_a_recorder_left_open_is_closed_at_interpreter_exit(run_path):
    script = f"""
import torch
from pinnlog.recorder import Recorder, every
torch.manual_seed(0)
model = torch.nn.Linear(2, 1)
x = torch.randn(8, 2)
rec = Recorder({str(run_path)!r}, model, torch.optim.SGD(model.parameters(), lr=0.1), lambda m, b: m(x[b::2]).mean(), 2,
               schedule=every(5))
for step in range(12):
    rec.step(step, loss=step * 2)
"""  # no close(): the rows still buffered in the recorder must reach the store at exit
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "was not closed" in done.stderr
    run = open_run(run_path)
    assert run.attrs["status"] == "interrupted"
    assert run["scalars"]["loss"].values.tolist() == [2 * s for s in range(12)]
    assert run["gradient_stats"]["step"].values.tolist() == [0, 5, 10]
