"""Schedules: the paper's cadence in one line, log spacing, unions, explicit lists (torch-free)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pinnlog.recorder import Schedule, every, logspaced, steps
from pinnlog.recorder.schedules import as_schedule

PAPER_LOGS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "paper_logs" / "allen_cahn"
PAPER = every(2, stop=300) | every(100, start=300)


def test_paper_cadence_is_one_line():
    picked = PAPER.select(range(1, 300_001))
    assert picked[:3] == [2, 4, 6]
    assert [s for s in picked if s < 300] == list(range(2, 300, 2))
    assert [s for s in picked if s >= 300] == list(range(300, 300_001, 100))
    assert repr(PAPER) == "every(2, stop=300) | every(100, start=300)"


@pytest.mark.reference_data
def test_paper_cadence_matches_the_steps_the_authors_logged():
    path = PAPER_LOGS / "v" / "grad_stats.txt"
    if not path.exists():
        pytest.skip("../shared/reference/paper_logs is not available")
    with path.open() as f:
        logged = sorted({int(float(row["Epoch"])) for row in csv.DictReader(f)})
    assert PAPER.select(range(1, 300_001)) == logged


@pytest.mark.parametrize(
    "expr",
    ["every(2, stop=300) | every(100, start=300)", "every(7, start=3)", "logspaced(5000, 40)", "steps([1, 5, 9]) | every(50)"],
)
def test_repr_rebuilds_the_same_schedule(expr):
    schedule = eval(expr, {"every": every, "logspaced": logspaced, "steps": steps})
    rebuilt = eval(repr(schedule), {"every": every, "logspaced": logspaced, "steps": steps})
    assert rebuilt.select(range(6000)) == schedule.select(range(6000))


def test_logspaced_spreads_evenly_in_log_step():
    total, n = 300_000, 400
    picked = np.array(logspaced(total, n).select(range(total + 1)))
    assert picked[0] == 0 and picked[-1] == total
    assert 300 <= len(picked) <= n  # rounding merges some of the first, closely spaced steps
    ratio = total ** (1 / (n - 2))  # the grid from 1 to total in n - 1 points
    tail = picked[picked > 10_000]
    np.testing.assert_allclose(tail[1:] / tail[:-1], ratio, rtol=1e-3)


def test_union_of_lists_ints_and_schedules():
    combined = [10, 20] | every(25) | steps([7])
    assert isinstance(combined, Schedule)
    assert combined.select(range(60)) == [0, 7, 10, 20, 25, 50]
    assert as_schedule([3, 1]).select(range(5)) == [1, 3]
    assert as_schedule(5).select(range(12)) == [0, 5, 10]
    assert as_schedule(None).select(range(100)) == []


def test_schedule_mistakes_are_refused():
    with pytest.raises(ValueError, match="n >= 1"):
        every(0)
    with pytest.raises(ValueError, match="n >= 2"):
        logspaced(100, 1)
    with pytest.raises(TypeError, match="not a function"):
        as_schedule(lambda step: step % 2 == 0)
