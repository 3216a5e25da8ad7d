"""The shipped Helmholtz pair (sample_logs/) shows what README.md and docs/reproduction.md say it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from pinnlog.analyzer import metrics as M
from pinnlog.analyzer.io import open_run
from pinnlog.analyzer.phases import detect_phases

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
VANILLA, RBA = SAMPLES / "helmholtz_vanilla.zarr", SAMPLES / "helmholtz_rba.zarr"
pytestmark = pytest.mark.skipif(
    not (VANILLA.is_dir() and RBA.is_dir()), reason="the Helmholtz sample pair is not in sample_logs/"
)


def first_step_at_or_below(path, level):
    """Independent of the analyzer: the raw scalars read with zarr, a plain scan."""
    scalars = zarr.open_group(str(path), mode="r")["scalars"]
    n = int(scalars.attrs["n_committed"])
    steps, error = scalars["step"][:n], scalars["test_error"][:n]
    hits = np.flatnonzero(np.isfinite(error) & (error <= level))
    return (int(steps[hits[0]]) if hits.size else None), int(steps[-1])


def test_rba_reaches_10_percent_at_least_3x_sooner_or_vanilla_never():
    rba, _ = first_step_at_or_below(RBA, 0.1)
    vanilla, last = first_step_at_or_below(VANILLA, 0.1)
    assert rba is not None and rba <= last
    assert vanilla is None or vanilla >= 3 * rba


def test_the_stores_say_what_they_are():
    for path, rba in ((VANILLA, False), (RBA, True)):
        config = open_run(path).attrs["config"]
        assert (config["pde"], config["rba"], config["config_name"], config["seed"]) == ("helmholtz", rba, "cpu-helmholtz", 0)
        assert config["schedule"] == "every(2, stop=300) | every(100, start=300)"
    groups = set(zarr.open_group(str(RBA), mode="r").group_keys())
    assert {"gradient_stats", "residuals", "activations", "scalars"} <= groups
    assert "rba_weight" in zarr.open_group(str(RBA), mode="r")["residuals"].array_keys()


def test_analyze_finds_fitting_diffusion_and_total_diffusion_in_the_rba_run():
    phases = detect_phases(M.snr(open_run(RBA)).compute())
    assert [p.label for p in phases.phases] == ["fitting", "diffusion", "total diffusion"]


def test_the_samples_fit_the_size_budget():
    total = sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file())
    assert total <= 60e6
