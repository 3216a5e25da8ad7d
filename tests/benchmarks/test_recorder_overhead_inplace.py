"""benchmarks/recorder_overhead.py (e), the in-place block measurement, runs and its runs end bitwise identical."""

from benchmarks import recorder_overhead


def test_in_place_blocks_run_and_recorded_training_stays_bitwise_the_plain_one(capsys):
    recorder_overhead.main(["--threads", "1", "--skip", "a,b,d", "--inplace-every", "2", "--inplace-blocks", "1"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip().startswith(("[synchronous]", "[overlap]"))]
    assert len(lines) == 2
    for line in lines:
        assert "weights bitwise identical: True" in line and "overlap off" not in line
