"""A small live-read run: open_run + metrics while a subprocess records; each read extends the one before.

The full campaign (1,000 reads) is ``python -m benchmarks.reliability.live_read``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from benchmarks.reliability.live_read import run_campaign


@pytest.mark.timeout(300)
def test_reads_of_a_store_being_written_never_fail(tmp_path):
    counts = run_campaign(30, tmp_path, log=None)
    assert counts["failures"] == 0, counts["first_failures"]
    assert counts["steps_committed_last_read"] > counts["steps_committed_first_read"]  # it was being written
