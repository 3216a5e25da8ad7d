"""pinnlog.analyzer: open a run store lazily as xarray, compute the paper's metrics, find phases, report.

Never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version

from pinnlog.analyzer import errors
from pinnlog.analyzer.errors import *  # noqa: F403 - every error and warning of pinnlog, at the top

try:
    __version__ = version("pinnlog")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# the four functions are loaded on first use (__getattr__ below)
__all__ = [*errors.__all__, "__version__", "describe_run", "open_run", "repair_run", "verify_run"]  # noqa: F405


def __getattr__(name: str):
    # open_run imports xarray, dask and zarr; load them on first use so `pinnlog --version` stays instant.
    if name in ("open_run", "describe_run", "repair_run", "verify_run"):
        from pinnlog.analyzer import store

        return getattr(store, name)
    raise AttributeError(f"module 'pinnlog.analyzer' has no attribute {name!r}")
