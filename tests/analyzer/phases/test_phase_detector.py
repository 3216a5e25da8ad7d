"""``PhaseDetector``: change points recovered on curves with known truth, and its invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import ruptures as rpt
import xarray as xr

from pinnlog.analyzer.phases import PhaseDetectionError, PhaseDetector
from pinnlog.analyzer.phases.detect import steepest_descent_onset

SEEDS = range(10)


@pytest.mark.parametrize("noise", [0.05, 0.2, 0.5])
def test_change_points_are_recovered_within_a_tenth_of_a_decade(piecewise_snr, noise, decades_off):
    # 1 to 4 segments with jumps of 1-2 decades and slopes up to 0.5, on the paper's non-uniform sampling
    misses = []
    for n_segments in (1, 2, 3, 4):
        for seed in SEEDS:
            signal, truth = piecewise_snr(n_segments, noise, seed)
            found = PhaseDetector().fit(signal).predict()
            if decades_off(found, truth) > 0.1:
                misses.append((n_segments, seed, truth, found))
    # the BIC penalty allows a few percent of false alarms on white noise; more means a broken detector
    assert len(misses) <= 2, misses


@pytest.mark.parametrize("noise", [0.05, 0.1])
def test_kinks_are_recovered_within_the_acceptance_tolerance(piecewise_snr, noise, decades_off):
    # continuous changes of slope (the end of the fitting descent) are harder to place than jumps
    misses = []
    for n_segments in (2, 3, 4):
        for seed in SEEDS:
            signal, truth = piecewise_snr(n_segments, noise, seed, kinks=True)
            found = PhaseDetector().fit(signal).predict()
            if decades_off(found, truth) > 0.3:
                misses.append((n_segments, seed, truth, found))
    assert len(misses) <= 2, misses


@pytest.mark.parametrize("noise", [0.05, 0.3, 1.0])
def test_a_curve_without_a_change_is_one_phase(piecewise_snr, noise):
    found = [PhaseDetector().fit(piecewise_snr(1, noise, seed)[0]).predict() for seed in range(20)]
    assert sum(bool(f) for f in found) <= 1, found


def test_heavy_downward_spikes_do_not_move_the_changes(piecewise_snr, decades_off):
    # the raw SNR dips by decades whenever the mean gradient nearly cancels; cells use medians
    misses = []
    for n_segments in (2, 3):
        for seed in SEEDS:
            signal, truth = piecewise_snr(n_segments, 0.1, seed)
            rng = np.random.default_rng(seed + 100)
            dips = np.where(rng.random(signal.size) < 0.05, 10.0 ** -rng.uniform(1, 3, signal.size), 1.0)
            if decades_off(PhaseDetector().fit(signal * dips).predict(), truth) > 0.1:
                misses.append((n_segments, seed))
    assert len(misses) <= 2, misses


def test_uniform_sampling_works_too(piecewise_snr, decades_off):
    steps = np.arange(1, 20_001)
    for seed in range(3):
        signal, truth = piecewise_snr(3, 0.2, seed, steps=steps)
        assert decades_off(PhaseDetector().fit(signal).predict(), truth) <= 0.1


def test_refinement_puts_a_sharp_jump_on_its_exact_step(piecewise_snr, decades_off):
    exact = unrefined_exact = 0
    for seed in SEEDS:
        signal, truth = piecewise_snr(2, 0.01, seed)
        exact += PhaseDetector().fit(signal).predict() == truth
        unrefined = PhaseDetector(refine=False).fit(signal).predict()
        assert decades_off(unrefined, truth) <= 0.2  # the grid alone is right to a cell or two
        unrefined_exact += unrefined == truth
    assert exact == len(SEEDS) and unrefined_exact < len(SEEDS)


def test_n_phases_forces_the_count(piecewise_snr, decades_off):
    signal, truth = piecewise_snr(3, 0.1, 1)
    detector = PhaseDetector().fit(signal)
    assert decades_off(detector.predict(n_phases=3), truth) <= 0.1
    assert detector.predict(n_phases=1) == []
    two = detector.predict(n_phases=2)
    assert len(two) == 1 and min(abs(np.log10(two[0] / t)) for t in truth) <= 0.1
    assert len(detector.predict(n_phases=6)) == 5
    with pytest.raises(PhaseDetectionError, match="cannot fit 1000 phases"):
        detector.predict(n_phases=1000)


def test_more_penalty_never_gives_more_boundaries(piecewise_snr):
    signal, _ = piecewise_snr(4, 0.3, 2)
    counts = [len(PhaseDetector(penalty=p).fit(signal).predict()) for p in (1.0, 10.0, 100.0, 1e4, 1e9)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 3 and counts[-1] == 0


def test_invariant_to_units_of_the_value_and_of_the_step(piecewise_snr):
    signal, _truth = piecewise_snr(3, 0.2, 4)
    found = PhaseDetector().fit(signal).predict()
    assert PhaseDetector().fit(signal * 1e-3).predict() == found  # a constant factor is a shift in log
    tenfold = signal.assign_coords(step=signal["step"] * 10)
    assert PhaseDetector().fit(tenfold).predict() == [10 * b for b in found]


def test_noise_estimate_is_about_one_when_the_noise_model_holds(piecewise_snr):
    # cells carry their own noise estimates; the global scale only corrects them
    scales = [PhaseDetector().fit(piecewise_snr(2, noise, seed)[0]).noise_ for noise in (0.05, 0.5) for seed in range(5)]
    assert 0.5 < np.median(scales) < 1.5


def test_lazy_and_numpy_inputs_give_the_same_boundaries(piecewise_snr):
    signal, _ = piecewise_snr(3, 0.2, 5)
    found = PhaseDetector().fit(signal).predict()
    assert PhaseDetector().fit(signal.chunk(500)).predict() == found
    assert PhaseDetector().fit(signal.values, steps=signal["step"].values).predict() == found


def test_other_ruptures_costs_plug_in(piecewise_snr, decades_off):
    signal, truth = piecewise_snr(2, 0.05, 3)
    for cost in ("l1", rpt.costs.CostL2()):
        detector = PhaseDetector(cost=cost).fit(signal)
        assert decades_off(detector.predict(n_phases=2), truth) <= 0.1
        with pytest.raises(PhaseDetectionError, match="has no built-in penalty; pass penalty= or n_phases"):
            detector.predict()
    assert len(PhaseDetector(cost="l1", penalty=1e9).fit(signal).predict()) == 0


def test_l2_cost_finds_the_changes_of_level_of_a_piecewise_constant_curve(piecewise_snr, decades_off):
    for seed in range(5):
        signal, truth = piecewise_snr(3, 0.2, seed, max_slope=0.0)
        assert decades_off(PhaseDetector(cost="l2").fit(signal).predict(), truth) <= 0.1


def test_samples_without_a_logarithm_are_skipped(piecewise_snr, decades_off):
    signal, truth = piecewise_snr(2, 0.1, 6)
    found = PhaseDetector().fit(signal).predict()
    step0 = xr.concat([signal.isel(step=[0]).assign_coords(step=[0]), signal], dim="step")
    assert PhaseDetector().fit(step0).predict() == found  # step 0 (a test-error log) silently
    holes = signal.copy()
    holes[[5, 50, 500]] = [0.0, np.nan, -1.0]
    with pytest.warns(RuntimeWarning, match="3 non-positive or non-finite values skipped"):
        detector = PhaseDetector().fit(holes)
    assert detector.steps_.size == signal.size - 3
    assert decades_off(detector.predict(), truth) <= 0.1


def test_user_mistakes_are_one_line_errors(piecewise_snr):
    signal, _ = piecewise_snr(2, 0.1, 0)
    with pytest.raises(PhaseDetectionError, match=r"unknown cost 'nope'"):
        PhaseDetector(cost="nope")
    with pytest.raises(PhaseDetectionError, match=r"expected a curve over 'step', got dims \('step', 'layer'\)"):
        PhaseDetector().fit(xr.concat([signal, signal], dim="layer").transpose("step", "layer"))
    with pytest.raises(PhaseDetectionError, match="only 3 usable samples"):
        PhaseDetector().fit(signal.isel(step=slice(0, 3)))
    with pytest.raises(PhaseDetectionError, match=r"call fit\(signal\) before predict"):
        PhaseDetector().predict()


def test_a_sparsely_evaluated_test_error_gives_its_onset_without_a_warning():
    """A test error is evaluated at some steps only; the NaN rows between are not values to warn about."""
    steps = np.unique(np.geomspace(1, 20_000, 600).astype(int))
    error = np.where(steps < 1_000, 0.5 * steps**-0.05, 0.5 * 1_000**-0.05 * (steps / 1_000.0) ** -2.0)
    evaluated = xr.DataArray(error, dims="step", coords={"step": steps}, name="relative_l2")
    sparse = evaluated.where(np.arange(steps.size) % 3 == 0)  # NaN where no evaluation ran
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onset = steepest_descent_onset(sparse)
    assert onset == steepest_descent_onset(sparse.dropna("step"))
    assert 500 <= onset <= 2_000  # the fall starts at step 1,000
