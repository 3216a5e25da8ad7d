"""The labelling rule of ``docs/phases.md``, case by case (levels are median log10 SNR per segment)."""

from __future__ import annotations

import pytest

from pinnlog.analyzer.phases import label_segments

F, D, T = "fitting", "diffusion", "total diffusion"


@pytest.mark.parametrize(
    ("levels", "labels"),
    [
        ([], []),
        ([1.5], [F]),  # one phase above SNR = 1: deterministic regime
        ([-0.5], [D]),
        ([2.0, -1.0], [F, D]),  # the SNR collapses
        ([-1.0, 0.5], [D, T]),  # starts stochastic (Helmholtz vanilla), then rises
        ([2.0, -1.0, 0.5], [F, D, T]),  # Fig 2
        ([2.0, -1.0, 0.5, -3.0], [F, D, T, T]),  # the final decline belongs to total diffusion
        ([2.0, -1.0, -2.0], [F, D, D]),  # no rise: no total diffusion
        ([2.0, 0.5, -1.0, 0.5], [F, F, D, T]),  # the descent stays fitting while SNR > 1
        ([3.0, 1.5, 0.4, 1.0], [F, F, D, T]),  # diffusion above SNR = 1 (cavity): fitting ends before the trough
        ([2.0, -1.0, 0.2, 0.8], [F, D, T, T]),  # a lead-in already half-way up starts total diffusion
        ([2.0, -1.0, -0.6, 0.8], [F, D, D, T]),  # one not yet half-way up does not
        # a bump in diffusion that falls back is not total diffusion: the highest plateau is
        ([1.7, 0.3, -0.5, -1.9, -0.4, -1.7, 0.6, -0.5, -2.7], [F, F, D, D, D, D, T, T, T]),
        ([1.5, 1.8, -1.0, 0.5], [F, F, D, T]),  # an early rise within fitting
        ([0.5, 0.5], [D, D]),  # equal levels: no trough, no rise
        ([5.2, 3.7, 2.7, 1.7], [F, F, F, F]),  # never down to O(1) (cavity RBA, 4,000 steps): still fitting
    ],
)
def test_label_rule(levels, labels):
    assert label_segments(levels) == labels


def test_srr_b_regime_moves_the_fitting_threshold():
    levels = [-0.1, -1.0]  # SRR_B 0.79 then 0.1: deterministic by Eq 17 (SNR 1.3), not by SNR > 1
    assert label_segments(levels) == [D, D]
    assert label_segments(levels, regime=2**-0.5) == [F, D]


def test_without_a_regime_fitting_ends_near_the_floor():
    assert label_segments([-1.0, -2.0, -3.5, -3.0], regime=None) == [F, F, D, T]
    assert label_segments([-1.0, -3.0, -3.5, -2.5], regime=None) == [F, D, D, T]
    assert label_segments([-1.0, -3.0, -3.5, -3.2], regime=None) == [F, D, D, D]  # a rise under MIN_RISE
    assert label_segments([-1.0, 0.0], regime=None) == [D, T]
