"""Reports: the paper's figures, ``summary.json`` and a self-contained ``report.html`` from run stores.

    from pinnlog.analyzer.report import analyze_run, compare_runs

    analyze_run("runs/ac_rba.zarr")                      # -> runs/ac_rba_report/
    compare_runs(["runs/ac.zarr", "runs/ac_rba.zarr"], labels=["vanilla", "RBA"], out_dir="ac_compare")

Figure functions (``figures.py``) take metric outputs and never compute; ``summary.py`` defines the JSON
document (schema ``summary.schema.json``, documented in ``docs/report.md``); ``html.py`` renders the page.
"""

from pinnlog.analyzer.errors import NothingToReportError, ReportArgumentError, ReportOutputError, SchedulerError
from pinnlog.analyzer.report import build
from pinnlog.analyzer.report.build import *  # noqa: F403 - build.py's public names are this package's

__all__ = [*build.__all__, "NothingToReportError", "ReportArgumentError", "ReportOutputError", "SchedulerError"]
