"""``pinnlog export``: the curves read back with pandas, xarray and TensorBoard's own reader equal the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer import open_run
from pinnlog.analyzer.export import export_run
from pinnlog.analyzer.phases import detect_phases


@pytest.fixture(scope="module")
def store(tmp_path_factory, make_store):
    return make_store(
        tmp_path_factory.mktemp("export"),
        n_steps=40,
        layers=(2, 6, 6, 1),
        seed=11,
        activations=True,
        residuals=True,
        name="full.zarr",
    )


@pytest.fixture(scope="module")
def truth(store):
    """The metric functions' own outputs, computed here from the store."""
    run = open_run(store)
    norms = M.gradient_norms(run).compute()
    return {
        "snr": M.snr(run).compute(),
        "snr_per_layer": M.snr(run, per_layer=True).compute(),
        "srr_b": M.srr_b(run).compute(),
        "srr_c": M.srr_c(run).compute(),
        "mean_norm": norms["mean_norm"],
        "std_norm": norms["std_norm"],
        "weight_norm": M.weight_norm(run).compute(),
        "mutual_information": M.mutual_information(run).compute(),
        "binarization": M.binarization(run).compute(),
        "homogeneity": M.residual_homogeneity(run).compute(),
        "scalars": run["scalars"].to_dataset().compute(),
    }


def test_csv_reads_back_with_pandas_equal_to_the_metrics(store, truth, tmp_path, cli):
    result = cli("export", store, "--to", "csv", "-o", tmp_path / "curves")
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "curves"
    grad = pd.read_csv(folder / "gradient_stats.csv", index_col="step")
    np.testing.assert_array_equal(grad.index.to_numpy(), truth["snr"]["step"].values)
    np.testing.assert_allclose(grad["snr"], truth["snr"].values, rtol=1e-12)
    np.testing.assert_allclose(grad["srr_b"], truth["srr_b"].values, rtol=1e-12)
    np.testing.assert_allclose(grad["srr_c"], truth["srr_c"].values, rtol=1e-12)
    # identities of the paper, independent of our code: SNR = ‖μ‖/‖σ‖ (Eq 8), SNR = SRR_B / sqrt(1 - SRR_B²) (Eq 17)
    np.testing.assert_allclose(grad["snr"], grad["gradient_mean_norm"] / grad["gradient_std_norm"], rtol=1e-9)
    np.testing.assert_allclose(grad["snr"], grad["srr_b"] / np.sqrt(1 - grad["srr_b"] ** 2), rtol=1e-6)
    for i, name in enumerate(truth["snr_per_layer"]["layer_name"].values):
        np.testing.assert_allclose(grad[f"snr_per_layer/{name}"], truth["snr_per_layer"].isel(layer=i).values, rtol=1e-12)
        np.testing.assert_allclose(grad[f"weight_norm/{name}"], truth["weight_norm"].isel(layer=i).values, rtol=1e-12)
    act = pd.read_csv(folder / "activations.csv", index_col="step")
    for i, name in enumerate(truth["mutual_information"]["layer_name"].values):
        np.testing.assert_allclose(act[f"mutual_information/{name}"], truth["mutual_information"].isel(layer=i).values)
        np.testing.assert_allclose(act[f"binarization/{name}"], truth["binarization"].isel(layer=i).values)
    res = pd.read_csv(folder / "residuals.csv", index_col="step")
    np.testing.assert_allclose(res["residual_cv"], truth["homogeneity"]["cv"].values, rtol=1e-12)
    scalars = pd.read_csv(folder / "scalars.csv", index_col="step")
    for name in truth["scalars"].data_vars:
        np.testing.assert_allclose(scalars[name], truth["scalars"][name].values, rtol=1e-12, equal_nan=True)
    phases = pd.read_csv(folder / "phases.csv", keep_default_na=False)
    table = detect_phases(truth["snr"]).to_dict()["phases"]
    assert phases["label"].tolist() == [p["label"] for p in table]
    assert phases["first_step"].tolist() == [p["first_step"] for p in table]
    assert phases["last_step"].tolist() == [p["last_step"] for p in table]
    # every data column is described, with units and the metric's own equation
    columns = pd.read_csv(folder / "columns.csv", keep_default_na=False)
    described = set(zip(columns["file"], columns["column"]))
    for file in ("gradient_stats.csv", "activations.csv", "residuals.csv", "scalars.csv", "phases.csv"):
        header = pd.read_csv(folder / file, nrows=0).columns[1:]
        assert {(file, c) for c in header} <= described, file
    equation = dict(zip(columns["column"], columns["equation"]))
    units = dict(zip(columns["column"], columns["units"]))
    assert equation["snr"] == truth["snr"].attrs["equation"] == "Eq. 8"
    assert equation["srr_b"] == "Eq. 17" and equation["srr_c"] == "Eq. 13"
    assert equation[f"mutual_information/{truth['mutual_information']['layer_name'].values[0]}"] == "Eq. 31"
    assert units[f"mutual_information/{truth['mutual_information']['layer_name'].values[0]}"] == "bit"
    assert equation["test_error"] == "Eq. 7" and all(units.values())


def test_netcdf_reads_back_with_xarray_equal_to_the_metrics(store, truth, tmp_path):
    written = export_run(store, "netcdf", tmp_path / "curves.nc")
    tree = xr.open_datatree(written)
    grad = tree["gradient_stats"].to_dataset()
    xr.testing.assert_allclose(grad["snr"].reset_coords(drop=True), truth["snr"].reset_coords(drop=True).rename("snr"))
    np.testing.assert_allclose(grad["snr_per_layer"].values, truth["snr_per_layer"].values, rtol=1e-12)
    np.testing.assert_allclose(grad["srr_c"].values, truth["srr_c"].values, rtol=1e-12)
    act = tree["activations"].to_dataset()
    np.testing.assert_allclose(act["mutual_information"].values, truth["mutual_information"].values)
    assert act["mutual_information"].attrs["units"] == "bit" and act["mutual_information"].attrs["equation"] == "Eq. 31"
    assert grad["srr_b"].attrs["equation"] == "Eq. 17" and grad["snr"].attrs["units"] == "1"
    phases = tree["phases"].to_dataset()
    table = detect_phases(truth["snr"]).to_dict()["phases"]
    assert [str(v) for v in phases["label"].values] == [p["label"] for p in table]
    assert phases["first_step"].values.tolist() == [p["first_step"] for p in table]
    scalars = tree["scalars"].to_dataset()
    np.testing.assert_allclose(scalars["test_error"].values, truth["scalars"]["test_error"].values, equal_nan=True)
    assert scalars["test_error"].attrs["equation"] == "Eq. 7"


def test_tensorboard_event_files_hold_the_curves_and_the_phase_boundaries(store, truth, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, TENSORS, EventAccumulator

    written = export_run(store, "tensorboard", tmp_path / "tb")
    assert written == tmp_path / "tb" / "full"
    acc = EventAccumulator(str(written), size_guidance={SCALARS: 0, TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def curve(tag):
        events = acc.Scalars(tag)
        return np.array([e.step for e in events]), np.array([e.value for e in events])

    steps, values = curve("gradient_stats/snr")
    np.testing.assert_array_equal(steps, truth["snr"]["step"].values)
    np.testing.assert_allclose(values, truth["snr"].values.astype(np.float32), rtol=1e-6)  # TensorBoard stores float32
    name = str(truth["snr_per_layer"]["layer_name"].values[1])
    np.testing.assert_allclose(
        curve(f"gradient_stats/snr_per_layer/{name}")[1], truth["snr_per_layer"].isel(layer=1).values, rtol=1e-6
    )
    mi_name = str(truth["mutual_information"]["layer_name"].values[0])
    np.testing.assert_allclose(
        curve(f"activations/mutual_information/{mi_name}")[1], truth["mutual_information"].isel(layer=0).values, rtol=1e-6
    )
    assert {"gradient_stats/srr_b", "gradient_stats/srr_c", "scalars/test_error", "scalars/loss"} <= tags
    # the phase index steps up exactly at the first step of each phase
    table = detect_phases(truth["snr"])
    assert len(table) >= 2  # the synthetic run has a boundary to find
    steps, index = curve("phases/phase")
    boundaries = steps[1:][np.diff(index) > 0]
    assert boundaries.tolist() == [b for b in table.boundaries if b > steps[0]]
    assert "phases/table" in acc.Tags()["tensors"]
    text = acc.Tensors("phases/table")[0].tensor_proto.string_val[0].decode()
    assert all(p.label in text for p in table.phases)
    # a second export replaces the run's folder instead of adding a second set of events
    export_run(store, "tensorboard", tmp_path / "tb")
    assert len(list(written.iterdir())) == 1


def test_export_without_tensorboard_installed_is_a_one_line_user_error(store, tmp_path, cli, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = cli("export", store, "--to", "tensorboard", "-o", tmp_path / "tb")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("install pinnlog[tensorboard]") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "tb").exists()


def test_a_run_with_only_scalars_exports_them_alone(tmp_path, make_store):
    import shutil

    store = make_store(tmp_path, n_steps=8, layers=(2, 3, 1), seed=2)
    shutil.rmtree(store / "gradient_stats")
    meta = store / "zarr.json"
    import json

    doc = json.loads(meta.read_text())
    doc.pop("consolidated_metadata", None)
    meta.write_text(json.dumps(doc))
    written = export_run(store, "csv", tmp_path / "c")
    assert sorted(p.name for p in written.iterdir()) == ["columns.csv", "scalars.csv"]
