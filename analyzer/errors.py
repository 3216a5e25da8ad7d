"""pinnlog's exceptions: one base, one-line messages that name the problem and the fix.

The command line catches :class:`PinnlogError` once, prints its message and exits 2;
anything else is an internal error (exit 1).
"""

from __future__ import annotations

__all__ = [
    "CorruptStoreError",
    "EmptyRunError",
    "MissingGroupError",
    "NotAStoreError",
    "PinnlogError",
    "RecorderError",
    "StoreNotFoundError",
    "UnknownFormatError",
    "WriterError",
]


class PinnlogError(Exception):
    """Base of every error pinnlog raises on purpose; ``str(err)`` is one line: problem + fix."""


class StoreNotFoundError(PinnlogError, FileNotFoundError):
    """The path or URL does not exist."""

    def __init__(self, path: str):
        super().__init__(f"{path}: no such run store; check the path (a run is a directory like run.zarr)")
        self.path = path


class NotAStoreError(PinnlogError, ValueError):
    """The path exists but is not a pinnlog (Zarr v3) store."""


class UnknownFormatError(PinnlogError, ValueError):
    """The store declares a ``pinnlog_format`` this version cannot read."""


class EmptyRunError(PinnlogError, ValueError):
    """The store exists but no step was committed yet."""


class MissingGroupError(PinnlogError, KeyError):
    """A metric needs a group (or variable) that was not recorded."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class CorruptStoreError(PinnlogError, ValueError):
    """The store's metadata or chunks are damaged or not what format 1 allows."""


class RecorderError(PinnlogError, ValueError):
    """A mistake in how the recorder is used (bad argument, step going backwards, ...)."""


class WriterError(PinnlogError, RuntimeError):
    """The background writer failed (disk full, permission, ...); steps committed before it are safe."""
