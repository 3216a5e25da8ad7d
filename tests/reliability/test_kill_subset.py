"""The CI subset of the kill campaign: 10 recordings SIGKILLed inside a capture, a chunk write or close.

The child reports every commit on stdout (the side channel); the store must hold every row it reported,
verify clean but for its open status, and ``repair_run`` must close it without losing a row. The full
campaign (100 kills) is ``python -m benchmarks.reliability.kill``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from benchmarks.reliability.kill import run_campaign


@pytest.mark.timeout(600)
def test_ten_sigkills_lose_no_committed_row_and_repair_keeps_every_row(tmp_path):
    counts = run_campaign(10, tmp_path, seed=1, log=lambda line: None)
    problems = counts.pop("details")
    assert counts["unopenable"] == 0, problems
    assert counts["committed_rows_lost"] == 0, problems
    assert counts["damaged"] == 0, problems
    assert counts["repair_rows_lost"] == 0 and counts["unhealthy_after_repair"] == 0, problems
    assert counts["targets"] == {"capture": 4, "write": 3, "close": 3}
    # The kills did land mid-write (a chunk or metadata write in flight when the child died).
    assert counts["hit"]["write"] >= 1
