"""``python -m benchmarks.pinns.run``: trains, records, and refuses mistakes with one line (exit 2)."""

import numpy as np
from typer.testing import CliRunner

from benchmarks.pinns.run import app
from pinnlog.analyzer import open_run

runner = CliRunner()


def test_records_a_short_run_and_reports_its_error(tmp_path):
    out = tmp_path / "bg.zarr"
    result = runner.invoke(app, ["burgers", "--rba", "--steps", "3", "--out", str(out), "--no-progress", "--seed", "4"])
    assert result.exit_code == 0, result.output
    run = open_run(out)
    cfg = run.attrs["config"]
    assert (cfg["pde"], cfg["rba"], cfg["seed"], cfg["steps"]) == ("burgers", True, 4, 3)
    scalars = run["scalars"].to_dataset()
    np.testing.assert_array_equal(scalars["step"].values, [0, 1, 2])
    final = float(scalars["test_error"].values[-1])
    assert f"final L2 {final:.4f}" in result.output
    assert run["residuals"].to_dataset()["rba_weight"].shape == (1, 2048)  # step 0 of every(200)


def test_existing_store_and_misplaced_options_are_refused(tmp_path):
    out = tmp_path / "taken.zarr"
    out.mkdir()
    result = runner.invoke(app, ["burgers", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    result = runner.invoke(app, ["helmholtz", "--reynolds", "100", "--steps", "2"])
    assert result.exit_code == 2 and "--reynolds applies to the cavity only" in result.output
    result = runner.invoke(app, ["heat", "--steps", "2"])
    assert result.exit_code == 2


def _store_arrays(path):
    """Every array of a store by path, except the wall-clock times (the only values a rerun may change)."""
    import zarr

    out = {}

    def walk(group, prefix=""):
        for name, array in group.arrays():
            if name != "wall_time":
                out[prefix + name] = array[...]
        for name, child in group.groups():
            walk(child, f"{prefix}{name}/")

    walk(zarr.open_group(str(path), mode="r"))
    return out


def test_the_sample_config_reruns_to_an_identical_store(tmp_path):
    # sample_logs/helmholtz_*.zarr are `--config cpu-helmholtz --seed 0` runs: a rerun with the same seed
    # must give the same store (here 12 steps; the sample runs are 10,000)
    import torch

    threads = torch.get_num_threads()  # --threads 1 (as the sample runs) sets it for this process
    stores = []
    for name in ("a.zarr", "b.zarr"):
        out = tmp_path / name
        args = ["helmholtz", "--rba", "--config", "cpu-helmholtz", "--steps", "12", "--seed", "0", "--threads", "1"]
        try:
            result = runner.invoke(app, [*args, "--no-progress", "--out", str(out)])
        finally:
            torch.set_num_threads(threads)
        assert result.exit_code == 0, result.output
        stores.append(out)
    a, b = (_store_arrays(p) for p in stores)
    assert sorted(a) == sorted(b) and "residuals/rba_weight" in a and "gradient_stats/sum_mu2" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    cfg = open_run(stores[0]).attrs["config"]
    assert (cfg["pde"], cfg["rba"], cfg["a1"], cfg["a2"], cfg["config_name"]) == ("helmholtz", True, 1.0, 4.0, "cpu-helmholtz")
    result = runner.invoke(app, ["allen_cahn", "--config", "cpu-helmholtz", "--steps", "2"])
    assert result.exit_code == 2 and "is for helmholtz only" in result.output


def test_overlap_records_in_the_background_the_same_store(tmp_path, monkeypatch):
    # --overlap hands captures to the recorder's capture thread; the store must equal a synchronous run's
    import torch

    from pinnlog.recorder import Recorder

    started = []
    start_background = Recorder._start_background

    def spy(self, *args, **kwargs):
        started.append(start_background(self, *args, **kwargs))
        return started[-1]

    monkeypatch.setattr(Recorder, "_start_background", spy)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # --threads 1 would outlive this test
    stores = {}
    for name, extra in (("sync", []), ("overlap", ["--overlap"])):
        stores[name] = tmp_path / f"{name}.zarr"
        args = ["allen_cahn", "--steps", "12", "--seed", "1", "--threads", "1", "--no-progress", "--out", str(stores[name])]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        if name == "sync":
            assert started == []  # without --overlap nothing goes to the capture thread
    assert started.count(True) >= 4  # every(2): captures at 0 (synchronous self-check), 2, ..., 10
    a, b = (_store_arrays(p) for p in stores.values())
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    result = runner.invoke(app, ["allen_cahn", "--rba", "--overlap", "--steps", "2"])
    assert result.exit_code == 2 and "--overlap needs --vanilla" in result.output
