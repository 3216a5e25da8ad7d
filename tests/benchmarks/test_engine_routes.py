"""benchmarks/engine_routes.py --quick runs every CPU route and each route's rows agree with the loop's."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")
from benchmarks import device_check, engine_routes


def test_engine_routes_quick_compares_every_cpu_route_with_the_loop(capsys):
    engine_routes.main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    diffs = dict(re.findall(r"^\s{4}(\S.*?)\s+[\d.]+ ms\s+ratio\s+[\d.]+\s+max row rel\. diff vs loop (\S+)$", out, re.M))
    assert set(diffs) == {"loop", "stacked", "stacked, chunks of 25", "func"}
    assert all(float(d) <= 1e-5 for d in diffs.values())
    # benchmarks/device_check.py's summary repeats the table: every route's line
    repeated = device_check.key_lines("routes", out.splitlines())
    assert [line for line in out.splitlines() if "ratio" in line and " ms " in line] == [
        line for line in repeated if " ms " in line
    ]
