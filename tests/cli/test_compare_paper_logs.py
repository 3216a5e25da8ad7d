"""``pinnlog compare`` on the authors' Allen–Cahn logs: RBA reaches 10% error ≈7.6× sooner (paper Fig 6)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT.parent / "shared" / "reference" / "paper_logs", ROOT / "shared" / "reference" / "paper_logs"]
PAPER_LOGS = next((p for p in CANDIDATES if (p / "allen_cahn" / "v" / "losses.txt").is_file()), None)

pytestmark = [
    pytest.mark.reference_data,
    pytest.mark.skipif(PAPER_LOGS is None, reason="the authors' logs (../shared/reference/paper_logs) are not here"),
]


def first_step_at_or_below(losses: Path, threshold: float) -> int:
    """From the authors' ``losses.txt`` (columns: iteration, relative L2 test error, loss)."""
    table = np.loadtxt(losses)
    hits = np.flatnonzero(table[:, 1] <= threshold)
    return int(table[hits[0], 0])


class PhaseRows(HTMLParser):
    """Phase-table rows of the page, grouped under the ``h2`` heading that precedes them."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, list[list[str]]] = {}
        self._heading, self._in_h2, self._row, self._cell = None, False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self._in_h2, self._heading = True, ""
        elif tag == "tr" and (attrs.get("class") or "").startswith("phase-"):
            self._row = []
            self.sections.setdefault(self._heading, []).append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif tag == "td" and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._in_h2:
            self._heading += data
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def paper_stores(tmp_path_factory):
    from pinnlog.analyzer.paper_logs import import_paper_logs

    tmp = tmp_path_factory.mktemp("paper")
    return {name: import_paper_logs(PAPER_LOGS / "allen_cahn" / name, tmp / f"ac_{name}.zarr") for name in ("v", "r")}


def test_compare_reports_rba_reaching_10_percent_7_6_times_sooner(cli, paper_stores, tmp_path):
    result = cli("compare", paper_stores["v"], paper_stores["r"], "--label", "vanilla", "--label", "RBA", "-o", tmp_path / "ac")
    assert result.exit_code == 0, result.stderr
    vanilla = first_step_at_or_below(PAPER_LOGS / "allen_cahn" / "v" / "losses.txt", 0.1)
    rba = first_step_at_or_below(PAPER_LOGS / "allen_cahn" / "r" / "losses.txt", 0.1)
    assert abs(vanilla - 110_800) <= 100 and abs(rba - 14_600) <= 100  # the README's figures

    summary = json.loads((tmp_path / "ac" / "summary.json").read_text())
    speedup = next(s for s in summary["comparison"]["speedups"] if s["threshold"] == 0.1)
    assert (speedup["run"], speedup["reference"]) == ("RBA", "vanilla")
    assert (speedup["run_steps"], speedup["reference_steps"]) == (rba, vanilla)
    assert speedup["speedup"] == pytest.approx(vanilla / rba)
    assert round(speedup["speedup"], 1) == 7.6
    assert f"RBA reaches 10% test error 7.6× sooner than vanilla ({rba:,} vs {vanilla:,} steps)" in result.stdout

    # both phase tables: on the console and in the report, each the run's phases from summary.json
    page = PhaseRows()
    page.feed((tmp_path / "ac" / "report.html").read_text())
    for run in summary["runs"]:
        assert run["phases"], run["phases_note"]
        assert f"phases of {run['label']}" in result.stdout
        rows = page.sections[f"Run {run['label']}: phases and summary"]
        # columns: phase, first step, 95% interval, last step, ...
        assert [[r[0], r[1], r[3]] for r in rows] == [
            [p["label"], f"{p['first_step']:,}", f"{p['last_step']:,}"] for p in run["phases"]
        ]
        assert run["phases"][0]["label"] == "fitting"
