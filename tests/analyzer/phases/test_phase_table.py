"""``detect_phases`` and ``PhaseTable``: labelled phases, their statistics, and their serialisations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

from pinnlog.analyzer.datasets import paper_steps
from pinnlog.analyzer.phases import Phase, PhaseDetectionError, PhaseTable, detect_phases


def three_phase_snr(noise=0.1, seed=0, fall_end=150, rise=10_000):
    """Fitting (a steep power-law fall from SNR 1e3), diffusion (SNR 0.1), total diffusion (SNR 3)."""
    steps = paper_steps()
    x = np.log10(steps)
    y = np.where(steps < fall_end, 3.0 - 2.0 * (x - x[0]) / (np.log10(fall_end) - x[0]), -1.0)
    y = np.where(steps >= rise, 0.5 - 0.2 * (x - np.log10(rise)), y)
    y = y + np.random.default_rng(seed).normal(0.0, noise, steps.size)
    return xr.DataArray(10.0**y, dims="step", coords={"step": steps}, name="snr")


def test_fitting_diffusion_total_diffusion_are_found_and_labelled(decades_off):
    table = detect_phases(three_phase_snr())
    assert [p.label for p in table] == ["fitting", "diffusion", "total diffusion"]
    assert decades_off(table.boundaries, [150, 10_000]) <= 0.05
    assert table.transition("total diffusion") == table.boundaries[1] and table.transition("nothing") is None
    assert table.settings["cost"] == "linear" and table.settings["penalty"] > 0


def test_phases_partition_the_samples():
    signal = three_phase_snr(noise=0.3, seed=1)
    table = detect_phases(signal)
    steps = signal["step"].values.tolist()
    assert table[0].first_step == steps[0] and table[-1].last_step == steps[-1]
    for before, after in zip(table.phases, table.phases[1:]):
        assert steps.index(after.first_step) == steps.index(before.last_step) + 1
    assert sum(p.n_samples for p in table) == len(steps)
    assert sum(s.n_samples for s in table.segments) == len(steps)


def test_median_and_slope_weigh_each_twentieth_of_a_decade_equally():
    signal = three_phase_snr(noise=0.3, seed=2)
    table = detect_phases(signal)
    steps, log_values = signal["step"].values, np.log10(signal.values)
    cells = np.floor((np.log10(steps) - np.log10(steps[0])) * 20).astype(int)
    weight = 1.0 / np.bincount(cells)[cells]
    for phase in table:
        inside = (steps >= phase.first_step) & (steps <= phase.last_step)
        order = np.argsort(log_values[inside])
        cumulative = np.cumsum(weight[inside][order])
        median = log_values[inside][order][np.searchsorted(cumulative, cumulative[-1] / 2)]
        assert math.log10(phase.median) == pytest.approx(median, abs=1e-12)
        x, y, w = np.log10(steps[inside]), log_values[inside], weight[inside]
        xm, ym = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
        slope = np.sum(w * (x - xm) * (y - ym)) / np.sum(w * (x - xm) ** 2)  # weighted least squares
        assert phase.slope == pytest.approx(slope, rel=1e-9)


def test_slope_of_a_clean_power_law_is_its_exponent():
    steps = paper_steps()
    table = detect_phases(xr.DataArray(50.0 * steps**-0.75, dims="step", coords={"step": steps}, name="snr"))
    assert len(table) == 1 and table[0].slope == pytest.approx(-0.75, rel=1e-9)


def test_forced_count_gives_exactly_that_many_rows():
    signal = three_phase_snr()
    assert len(detect_phases(signal, n_phases=3)) == 3
    five = detect_phases(signal, n_phases=5)
    assert len(five) == 5 and five.segments == five.phases and five.settings["n_phases"] == 5


def test_without_labels_every_segment_is_a_row():
    table = detect_phases(three_phase_snr(), labels=False)
    assert [p.label for p in table] == [f"segment {i + 1}" for i in range(len(table.segments))]
    assert table.phases == table.segments


def test_per_layer_tables_are_the_tables_of_each_curve():
    curves = [three_phase_snr(seed=s, rise=r) for s, r in ((0, 5_000), (1, 20_000), (2, 50_000))]
    per_layer = xr.concat(curves, dim="layer").transpose("step", "layer")
    per_layer = per_layer.assign_coords(layer=[0, 1, 2], layer_name=("layer", ["layer_0", "layer_1", "layer_2"]))
    tables = detect_phases(per_layer, dim="layer")
    assert list(tables) == [0, 1, 2]
    for layer, curve in enumerate(curves):
        assert tables[layer].boundaries == detect_phases(curve).boundaries
        assert tables[layer].name == f"snr layer_{layer}"
    with pytest.raises(PhaseDetectionError, match=r"dim 'neuron' is not a dimension of the signal; it has \('step', 'layer'\)"):
        detect_phases(per_layer, dim="neuron")
    with pytest.raises(PhaseDetectionError, match="pass dim= to get one table per curve"):
        detect_phases(per_layer)


def test_srr_b_is_labelled_with_its_own_regime():
    steps = paper_steps()
    levels = np.where(steps < 1000, 0.8, 0.05)  # SRR_B 0.8 is SNR 1.33: deterministic (Eq 17)
    curve = xr.DataArray(levels * 10 ** np.random.default_rng(0).normal(0, 0.01, steps.size), dims="step", coords={"step": steps})
    assert [p.label for p in detect_phases(curve.rename("srr_b"))] == ["fitting", "diffusion"]
    assert [p.label for p in detect_phases(curve.rename("other"))] == ["diffusion"]
    with pytest.raises(PhaseDetectionError, match="regime must be"):
        detect_phases(curve, regime=-1.0)


def test_to_dataset_holds_the_table():
    table = detect_phases(three_phase_snr())
    ds = table.to_dataset()
    assert ds.sizes == {"phase": 3} and ds.attrs["signal"] == "snr"
    assert ds["label"].values.tolist() == [p.label for p in table]
    for column in ("first_step", "last_step", "median", "slope", "n_samples"):
        assert ds[column].values.tolist() == [getattr(p, column) for p in table]


def test_to_dict_is_plain_json_and_round_trips():
    table = detect_phases(three_phase_snr())
    doc = json.loads(json.dumps(table.to_dict(), allow_nan=False))
    assert doc["signal"] == "snr" and doc["settings"]["bins_per_decade"] == 20
    assert [Phase(**row) for row in doc["phases"]] == table.phases
    assert [Phase(**row) for row in doc["segments"]] == table.segments
    lone = PhaseTable("snr", [Phase("fitting", 2, 2, 10.0, float("nan"), 1)])
    assert json.loads(json.dumps(lone.to_dict(), allow_nan=False))["phases"][0]["slope"] is None


def test_printed_table_has_one_line_per_phase():
    table = detect_phases(three_phase_snr())
    lines = str(table).splitlines()
    assert lines[0].split()[:3] == ["phase", "first", "step"] and set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(table)
    for line, phase in zip(lines[2:], table):
        assert line.startswith(phase.label) and f"{phase.first_step:,}" in line and f"{phase.last_step:,}" in line
    assert "boundaries=" in repr(table)
