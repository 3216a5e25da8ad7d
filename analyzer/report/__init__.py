"""Reports: the paper's figures, ``summary.json`` and a self-contained ``report.html`` from run stores.

    from pinnlog.analyzer.report import analyze_run, compare_runs

    analyze_run("runs/ac_rba.zarr")                      # -> runs/ac_rba_report/
    compare_runs(["runs/ac.zarr", "runs/ac_rba.zarr"], labels=["vanilla", "RBA"], out_dir="ac_compare")

Figure functions (``figures.py``) take metric outputs and never compute; ``summary.py`` defines the JSON
document (schema ``summary.schema.json``, documented in ``docs/report.md``); ``html.py`` renders the page.
"""

from pinnlog.analyzer.report.build import (
    DEFAULT_SMOOTH,
    DEFAULT_THRESHOLDS,
    NothingToReportError,
    Report,
    ReportArgumentError,
    ReportOutputError,
    SchedulerError,
    analyze_run,
    compare_runs,
    default_out_dir,
    run_label,
)

__all__ = [
    "DEFAULT_SMOOTH",
    "DEFAULT_THRESHOLDS",
    "NothingToReportError",
    "Report",
    "ReportArgumentError",
    "ReportOutputError",
    "SchedulerError",
    "analyze_run",
    "compare_runs",
    "default_out_dir",
    "run_label",
]
