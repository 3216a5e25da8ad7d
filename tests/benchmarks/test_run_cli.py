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
