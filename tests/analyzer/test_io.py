"""open_run: lazy, trimmed to n_committed, readable mid-write and from URLs; one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from pinnlog.analyzer import errors
from pinnlog.analyzer.store.read import describe_run, open_run, require_group
from pinnlog.analyzer.store.write import RunWriter

SMALL = dict(n_steps=5, layers=(2, 6, 1), seed=11, raw=2, activations=16, residuals=32)


def assert_one_line(exc: BaseException, *fragments: str) -> None:
    text = str(exc)
    assert "\n" not in text and text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# -- reading ---------------------------------------------------------------------------------------


def test_every_group_is_lazy_and_holds_the_recorded_values(make_store, synthetic_run, tmp_path):
    path = make_store(tmp_path, **SMALL)
    truth = synthetic_run(**SMALL)
    run = open_run(path)
    assert set(run.children) == {
        "scalars",
        "gradient_stats",
        "batch_gradients",
        "weights",
        "optimizer_state",
        "residuals",
        "activations",
    }
    for name, node in run.children.items():
        ds = node.to_dataset()
        for var in ds.data_vars:
            if "step" in ds[var].dims:
                assert isinstance(ds[var].data, da.Array), f"{name}/{var} was read eagerly"
    stats = run["gradient_stats"].to_dataset()
    np.testing.assert_array_equal(stats["step"].values, truth.steps)
    mu = truth.gradients.astype(np.float64).mean(axis=1)
    weight0 = truth.layout[0]
    expected = (mu[:, weight0["offset"] : weight0["offset"] + weight0["numel"]] ** 2).sum(axis=1)
    np.testing.assert_allclose(stats["sum_mu2"].isel(tensor=0).values, expected, rtol=1e-12)
    raw = run["batch_gradients"].to_dataset()
    np.testing.assert_array_equal(raw["step"].values, truth.steps[truth.raw_rows])
    np.testing.assert_array_equal(raw["batch_gradients"].values, truth.gradients[truth.raw_rows])
    acts = run["activations"].to_dataset()
    np.testing.assert_array_equal(acts["layer_1"].values, truth.activations["layer_1"])
    assert acts["layer_1"].dims == ("step", "probe", "unit_layer_1")
    scalars = run["scalars"].to_dataset()
    np.testing.assert_array_equal(scalars["step"].values, truth.scalar_steps)
    np.testing.assert_array_equal(scalars["test_error"].values, truth.test_error)
    assert stats.attrs["layers"] == truth.layers and stats.attrs["layout"] == truth.layout


def test_a_store_still_being_written_reads_as_its_committed_prefix(make_store, synthetic_run, tmp_path):
    path = make_store(tmp_path, n_steps=4, layers=(2, 3, 1), seed=5, close=False)
    truth = synthetic_run(n_steps=4, layers=(2, 3, 1), seed=5)
    capacity = zarr.open_group(str(path), mode="r")["gradient_stats"]["sum_mu2"].shape[0]
    assert capacity > 4  # pre-allocated rows beyond the commit exist on disk
    run = open_run(path)
    stats = run["gradient_stats"].to_dataset()
    assert stats.sizes["step"] == 4
    np.testing.assert_array_equal(stats["step"].values, truth.steps)
    assert np.isfinite(stats["sum_sigma2"].values).all()


def test_rows_written_but_not_committed_stay_invisible(tmp_path):
    store = RunWriter(tmp_path / "live.zarr", {"layout": []})
    store.append("scalars", {"step": np.arange(3), "loss": np.array([3.0, 2.0, 1.0])})
    before = open_run(tmp_path / "live.zarr")
    # A writer killed after writing a chunk but before raising n_committed leaves rows like these.
    store.root["scalars"]["loss"][3:5] = [99.0, 98.0]
    store.root["scalars"]["step"][3:5] = [3, 4]
    again = open_run(tmp_path / "live.zarr")
    np.testing.assert_array_equal(again["scalars"]["loss"].values, [3.0, 2.0, 1.0])
    store.append("scalars", {"step": np.arange(3, 6), "loss": np.array([0.5, 0.4, 0.3])})
    # The tree opened earlier keeps its prefix; a new open sees the new commit, not the torn rows.
    np.testing.assert_array_equal(before["scalars"]["loss"].values, [3.0, 2.0, 1.0])
    latest = open_run(tmp_path / "live.zarr")
    np.testing.assert_array_equal(latest["scalars"]["loss"].values, [3.0, 2.0, 1.0, 0.5, 0.4, 0.3])
    np.testing.assert_array_equal(latest["scalars"]["step"].values, np.arange(6))


def test_urls_and_store_objects_open_like_directories(make_store, tmp_path):
    import fsspec

    from pinnlog.analyzer.metrics import snr

    local = make_store(tmp_path, n_steps=3, layers=(2, 4, 1), seed=2)
    where = f"/pinnlog-test-{uuid.uuid4().hex}/run.zarr"
    fsspec.filesystem("memory").put(str(local), where, recursive=True)
    url = "memory://" + where.lstrip("/")
    expected = snr(open_run(local)).values
    for source in (url, local.resolve().as_uri(), zarr.storage.LocalStore(local)):
        run = open_run(source)
        np.testing.assert_array_equal(snr(run).values, expected)
        assert run.attrs["pinnlog_format"] == 1


def test_chunks_option_rechunks_the_growing_axis(make_store, tmp_path):
    path = make_store(tmp_path, n_steps=4, layers=(2, 4, 1), seed=1, raw=True)
    run = open_run(path, chunks={"param": 5, "step": 2})
    assert run["batch_gradients"]["batch_gradients"].data.chunks[1:] == ((4,), (5, 5, 5, 2))  # P = 17
    assert run["gradient_stats"]["sum_mu2"].data.chunks[0] == (2, 2)
    assert run["weights"]["weights"].data.chunks[1][0] == 5


def test_describe_run_reports_committed_shapes(make_store, tmp_path):
    path = make_store(tmp_path, n_steps=3, layers=(2, 4, 1), seed=4, close=False)
    facts = describe_run(path)
    groups = {g["name"]: g for g in facts["groups"]}
    assert groups["gradient_stats"]["n_committed"] == 3
    assert groups["gradient_stats"]["shapes"]["sum_mu2"] == (3, 4)


# -- refusing bad input with one line ----------------------------------------------------------------


def test_missing_path_is_store_not_found(tmp_path):
    with pytest.raises(errors.StoreNotFoundError) as info:
        open_run(tmp_path / "nope.zarr")
    assert isinstance(info.value, FileNotFoundError)
    assert_one_line(info.value, "nope.zarr", "no such run store")


def test_missing_url_is_store_not_found():
    with pytest.raises(errors.StoreNotFoundError) as info:
        open_run(f"memory://absent-{uuid.uuid4().hex}/run.zarr")
    assert_one_line(info.value, "no such run store")


def test_unknown_url_scheme_is_one_line():
    with pytest.raises(errors.NotAStoreError) as info:
        open_run("nosuchscheme://bucket/run.zarr")
    assert_one_line(info.value, "nosuchscheme://", "cannot open this URL")


def test_a_file_is_not_a_store(tmp_path):
    (tmp_path / "run.zarr").write_text("hello")
    with pytest.raises(errors.NotAStoreError) as info:
        open_run(tmp_path / "run.zarr")
    assert_one_line(info.value, "is a file")


def test_a_plain_directory_is_not_a_store(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(errors.NotAStoreError) as info:
        open_run(tmp_path / "data")
    assert_one_line(info.value, "not a Zarr v3 store")


def test_zarr_v2_is_named(tmp_path):
    zarr.open_group(str(tmp_path / "old.zarr"), mode="w", zarr_format=2)
    with pytest.raises(errors.NotAStoreError) as info:
        open_run(tmp_path / "old.zarr")
    assert_one_line(info.value, "Zarr v2")


def test_a_zarr_array_is_not_a_run(tmp_path):
    zarr.create_array(str(tmp_path / "arr.zarr"), shape=(3,), dtype="f4")
    with pytest.raises(errors.NotAStoreError) as info:
        open_run(tmp_path / "arr.zarr")
    assert_one_line(info.value, "arr.zarr")


def test_zarr_group_without_pinnlog_format(tmp_path):
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3).attrs["x"] = 1
    with pytest.raises(errors.NotAStoreError) as info:
        open_run(tmp_path / "g.zarr")
    assert_one_line(info.value, "pinnlog_format")


@pytest.mark.parametrize("value", [99, "1", True, 1.0, [1]])
def test_unknown_pinnlog_format(tmp_path, value):
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3).attrs["pinnlog_format"] = value
    with pytest.raises(errors.UnknownFormatError) as info:
        open_run(tmp_path / "g.zarr")
    assert_one_line(info.value, "pinnlog_format=", "upgrade pinnlog")


@pytest.mark.parametrize("minor", [3, "1", True, 1.5])
def test_unknown_format_minor(tmp_path, minor):
    attrs = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3).attrs
    attrs.update({"pinnlog_format": 1, "pinnlog_format_minor": minor})
    with pytest.raises(errors.UnknownFormatError) as info:
        open_run(tmp_path / "g.zarr")
    assert_one_line(info.value, "pinnlog_format_minor=", "upgrade pinnlog")


def test_a_format_1_0_store_gets_the_name_coordinates_of_1_1():
    """The Helmholtz sample logs are format 1.0 (no ``tensor`` array): open_run builds the coordinates from ``layout``."""
    path = Path(__file__).parents[2] / "sample_logs" / "helmholtz_vanilla.zarr"
    if not path.is_dir():
        pytest.skip("sample_logs/helmholtz_vanilla.zarr is not in this checkout")
    assert "pinnlog_format_minor" not in zarr.open_group(path, mode="r").attrs
    assert "tensor" not in zarr.open_group(path, mode="r")["gradient_stats"]
    run = open_run(path)
    stats = run["gradient_stats"]
    layout = run.attrs["layout"]
    assert stats["tensor"].values.tolist() == [t["name"] for t in layout]
    assert stats["layer_name"].values.tolist() == [f"layer_{t['layer']}" for t in layout]
    first = layout[0]["name"]
    np.testing.assert_array_equal(stats.sel(tensor=first)["sum_mu2"].values, stats["sum_mu2"].values[:, 0])


def test_run_without_committed_step_is_empty(tmp_path):
    RunWriter(tmp_path / "fresh.zarr", {})
    with pytest.raises(errors.EmptyRunError) as info:
        open_run(tmp_path / "fresh.zarr")
    assert_one_line(info.value, "no committed step")
    store = RunWriter(tmp_path / "zero.zarr", {})
    store._group("gradient_stats")  # a group created, nothing committed yet
    with pytest.raises(errors.EmptyRunError):
        open_run(tmp_path / "zero.zarr")


def test_missing_group_names_the_recorder_option(make_store, tmp_path):
    from pinnlog.analyzer.metrics import mutual_information, residual_homogeneity, snr_from_batch_gradients, srr_c

    run = open_run(make_store(tmp_path, n_steps=3, layers=(2, 4, 1), seed=0, adam=False))
    cases = [
        (lambda: require_group(run, "activations"), "probe="),
        (lambda: mutual_information(run), "probe="),
        (lambda: residual_homogeneity(run), "residuals="),
        (lambda: snr_from_batch_gradients(run), "raw_schedule="),
        (lambda: require_group(run, "gradient_stats", "sum_m_hat2"), "schedule="),
        (lambda: srr_c(run), "Adam"),
    ]
    for call, fragment in cases:
        with pytest.raises(errors.MissingGroupError) as info:
            call()
        assert_one_line(info.value, fragment)
        assert isinstance(info.value, errors.PinnlogError)


def test_invalid_n_committed_is_corrupt(make_store, tmp_path):
    path = make_store(tmp_path, n_steps=3, layers=(2, 4, 1), seed=0)
    meta = path / "gradient_stats" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["n_committed"] = 10_000
    meta.write_text(json.dumps(doc))
    with pytest.raises(errors.CorruptStoreError) as info:
        open_run(path)
    assert_one_line(info.value, "n_committed=10000")
    doc["attributes"]["n_committed"] = "three"
    meta.write_text(json.dumps(doc))
    with pytest.raises(errors.CorruptStoreError):
        open_run(path)


def test_open_run_is_exported_at_the_package_top():
    import pinnlog.analyzer

    assert pinnlog.analyzer.open_run is open_run


def test_the_analyzer_imports_no_torch():
    code = (
        "import pinnlog.analyzer, pinnlog.analyzer.metrics, pinnlog.analyzer.store.read, sys; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
