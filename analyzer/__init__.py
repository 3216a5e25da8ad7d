"""pinnlog.analyzer: open a run store lazily as xarray, compute the paper's metrics, find phases, report.

Never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version

from pinnlog.analyzer.errors import (
    EmptyRunError,
    MissingGroupError,
    NotAStoreError,
    PinnlogError,
    StoreNotFoundError,
    UnknownFormatError,
)

try:
    __version__ = version("pinnlog")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "PinnlogError",
    "StoreNotFoundError",
    "NotAStoreError",
    "UnknownFormatError",
    "EmptyRunError",
    "MissingGroupError",
]
