"""The CI subset of the issue-13 campaign (``python -m benchmarks.reliability.trust``, docs/reliability.md).

Small sizes, same code and same targets: every flip detected, no false alarm on recorder-written stores,
no row lost to a repair or an overwrite racing a live writer, ``pinnlog info`` within 200 MB on the
largest metadata the caps allow.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from benchmarks.reliability import trust


@pytest.mark.timeout(600)
def test_trust_campaign_subset(tmp_path):
    detected, flips = trust.bit_flips(tmp_path, 12, seed=3)
    assert detected == flips
    lost = trust.live_writer(tmp_path)
    assert lost["repair"] == 0 and lost["overwrite"] == 0
    assert lost["repair refused"] == 10 and lost["overwrite refused"] == 10
    alarms, n, notes = trust.recorder_stores(tmp_path, 2)
    assert n == 2 and alarms == 0, notes
    rss_mb, size = trust.info_rss(tmp_path)
    assert size > 3 * 2**20 and rss_mb <= 200
