"""Draw ``docs/img/phases_allen_cahn.png`` and print the validation table of ``docs/phases.md``.

Imports the authors' Allen–Cahn logs (vanilla ``v``, RBA ``r``) with ``import_paper_logs``, computes the
whole-net SNR (Eq. 8) and the test error (Eq. 7), detects the phases with the default settings (the test
error as evidence), and draws per run: the raw SNR
(faint), the detector's grid (median per 1/20 decade), the detected phases (shaded) and the boundaries
the authors marked by hand (black dashes). Run from the repository root::

    python docs/phases_figure.py [PAPER_LOGS_DIR]      # default ../shared/reference/paper_logs

It then prints how far the boundaries move when one setting changes (the sensitivity table).
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import xarray as xr

from pinnlog.analyzer import metrics, open_run
from pinnlog.analyzer.paper_logs import import_paper_logs
from pinnlog.analyzer.phases import PhaseDetector, detect_phases
from pinnlog.analyzer.report.figures import figure_style, new_figure, plot_snr

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "phases_allen_cahn.png"
RUNS = {"v": ("Allen–Cahn vanilla", (150, 91_700)), "r": ("Allen–Cahn RBA", (150, 11_100))}
VARIANTS = [
    {},
    {"bins_per_decade": 10},
    {"bins_per_decade": 40},
    {"min_size": 3},
    {"min_size": 6},
    {"bins_per_decade": 10, "min_size": 2},
    {"bins_per_decade": 40, "min_size": 8},
    {"cost": "l2"},
    {"refine": False},
    {"despike": 0},
]


def sensitivity(curves: dict[str, xr.DataArray], errors: dict[str, xr.DataArray]) -> None:
    """log10(detected / hand-marked) of both boundaries of both runs, one row per setting changed."""
    print("| settings | vanilla fitting end | vanilla total diffusion | RBA fitting end | RBA total diffusion |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        cells = []
        for name, (_, marks) in RUNS.items():
            table = detect_phases(curves[name], test_error=errors[name], **variant)
            for label, mark in zip(("diffusion", "total diffusion"), marks):
                found = table.transition(label)
                cells.append("none" if found is None else f"{math.log10(found / mark):+.2f}")
        shown = ", ".join(f"{k}={v!r}" for k, v in variant.items()) or "defaults"
        print(f"| {shown} | " + " | ".join(cells) + " |")


def main() -> None:
    logs = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "paper_logs"
    rows, curves, errors = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp, figure_style():
        fig, axes = new_figure(1, 2, width=9.0, height=3.6)
        for ax, (name, (title, marks)) in zip(axes[:, 0], RUNS.items()):
            run = open_run(import_paper_logs(logs / "allen_cahn" / name, Path(tmp) / f"{name}.zarr"))
            snr = metrics.snr(run).compute()
            curves[name], errors[name] = snr, metrics.relative_l2(run).compute()
            table = detect_phases(snr, test_error=errors[name])
            grid = PhaseDetector().fit(snr)
            cells = xr.DataArray(10.0**grid.grid_y_, dims="step", coords={"step": 10.0**grid.grid_x_})
            plot_snr(cells, raw=snr, phases=table, ax=ax)
            for step in marks:
                ax.axvline(step, color="black", ls="--", lw=1.2)
            ax.set_title(f"{title}: detected phases (shaded), hand-marked boundaries (black dashes)", fontsize="medium")
            for label, mark in zip(("diffusion", "total diffusion"), marks):
                found = table.transition(label)
                off = math.log10(found / mark) if found else float("nan")
                rows.append(f"| {title} | {label} | {mark:,} | {found:,} | {off:+.2f} |")
            print(f"{title}\n{table}\n")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(OUT, dpi=110)
    print("| run | phase starting | hand-marked step | detected step | log10(detected / hand-marked) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nwrote {OUT}\n")
    sensitivity(curves, errors)


if __name__ == "__main__":
    main()
