"""The commands of docs/phases.md run and print what the doc says (slow: a few minutes on 2 cores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-W", "ignore", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_phase_accuracy_held_out_meets_the_targets():
    out = run("benchmarks/phase_accuracy.py")
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}

    def counts(source: str) -> tuple[int, int]:
        hits, true = rows[source][3].split("=")[0].split("/")
        return int(hits), int(true)

    assert counts("allen_cahn") == (4, 4)  # the authors' Allen–Cahn boundaries kept
    hits, true = counts("pinnlog")
    assert hits == true  # every hand mark of pinnlog's runs
    hits, true = counts("synthetic")
    assert hits / true >= 0.8
    assert all(r[5].strip() == "0" for r in rows.values())  # no label contradicting its definition


def test_phase_accuracy_tune_split_runs():
    assert "| synthetic | 100 |" in run("benchmarks/phase_accuracy.py", "--split", "tune")
