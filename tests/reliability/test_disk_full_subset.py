"""Disk full (a patched store raising ENOSPC): one clear error, training goes on, every committed row stays.

The full campaign, with a real size-limited tmpfs when run as root, is ``python -m benchmarks.reliability.disk_full``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from benchmarks.reliability.disk_full import N_STEPS, scenario, train


@pytest.mark.timeout(300)
@pytest.mark.parametrize("on_error", ["raise", "warn"])
def test_enospc_mid_run(tmp_path, on_error):
    reference = train(None)["weights"]
    result = scenario(tmp_path, tmp_path, on_error, reference, budget=600_000)
    assert result["rows_committed_before_fault"] > 0  # the fault came mid-run, after some commits
    signals = (result["writer_errors_raised"], result["failure_warnings"])
    assert signals == ((1, 0) if on_error == "raise" else (0, 1))
    assert "No space left on device" in result["message"] and "\n" not in result["message"]
    assert result["steps_trained"] == N_STEPS and result["weights_equal_unrecorded"]
    assert result["rows_lost"] == 0 and result["steps_in_order"] and not result["damaged"]
    assert result["healthy_after_repair"]
