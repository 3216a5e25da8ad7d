"""The CI subset of the fuzz campaign: 100 hypothesis examples per metric function and for the phase detector.

Only documented exceptions (PinnlogError subclasses) may escape. The full campaign (1,000 examples each)
is ``python -m benchmarks.reliability.fuzz``.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.reliability import fuzz_targets
from benchmarks.reliability.fuzz_targets import TARGETS, fuzz, gradient_stats

N_EXAMPLES = 100


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_only_documented_exceptions(name):
    result = fuzz(name, N_EXAMPLES)
    assert result.failure is None, f"{name}: {result.failure}"
    assert result.examples >= N_EXAMPLES


def test_the_harness_reports_an_undocumented_exception(monkeypatch):
    def fragile(draw):  # a metric that raises a bare ValueError on a NaN input
        if np.isnan(gradient_stats(draw)["sum_mu2"].values).any():
            raise ValueError("NaN in input")

    monkeypatch.setitem(fuzz_targets.TARGETS, "fragile", fragile)
    # without shrinking: the failure is reported the same way (the campaign's targets shrink, as by default)
    result = fuzz("fragile", N_EXAMPLES, shrink=False)
    assert result.failure is not None and result.failure.startswith("ValueError: NaN in input")
