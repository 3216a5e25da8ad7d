"""Every exception and warning pinnlog raises on purpose, the recorder's included: one base, one-line messages.

The command line catches :class:`PinnlogError` once, prints its message and exits 2; anything else is
an internal error (exit 3). Warnings derive from :class:`PinnlogWarning` (a ``RuntimeWarning``), the
recorder's from :class:`RecorderWarning`, one class per thing a user may want to filter.

Names that older releases exported from other modules (``MetricArgumentError``,
``ReportArgumentError``, ``WatchArgumentError``) are kept as aliases of :class:`ArgumentError`, the
one "bad argument" error; the modules that used to define them still export them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "CorruptStoreError",
    "DegenerateMetricWarning",
    "EmptyRunError",
    "EngineFallbackWarning",
    "ExportError",
    "MetricArgumentError",
    "MissingGroupError",
    "ModelChangedWarning",
    "NonFiniteGradientWarning",
    "NotAStoreError",
    "NothingToReportError",
    "OverlapOffWarning",
    "PaperLogsError",
    "PaperLogsWarning",
    "PhaseDetectionError",
    "PhaseDetectionWarning",
    "PinnlogError",
    "PinnlogWarning",
    "ReadOnlyStoreError",
    "RecorderError",
    "RecorderNotClosedWarning",
    "RecorderWarning",
    "RecordingStoppedWarning",
    "ReportArgumentError",
    "ReportOutputError",
    "SchedulerError",
    "StaleOptimizerWarning",
    "StoreNotFoundError",
    "UnknownFormatError",
    "UnscheduledCaptureWarning",
    "WatchArgumentError",
    "WidthsMismatchError",
    "WriterBehindWarning",
    "WriterError",
    "short",
]


def short(value: Any, limit: int = 40, *, raw: bool = False) -> str:
    """``repr`` of a value from a store (the string itself if ``raw``), one line, at most ``limit`` characters.

    Every message that quotes a store keeps to this, so an attribute holding 10 MB or markup never
    reaches a terminal or a report whole.
    """
    text = value if raw and isinstance(value, str) else repr(value)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PinnlogError(Exception):
    """Base of every error pinnlog raises on purpose; ``str(err)`` is one line: problem + fix."""


class PinnlogWarning(RuntimeWarning):
    """Base of pinnlog's warnings.

    A ``RuntimeWarning``, as every warning of older releases was, so their filters and
    ``pytest.warns(RuntimeWarning)`` still match.
    """


# -- bad arguments ------------------------------------------------------------------------------------
class ArgumentError(PinnlogError, ValueError):
    """An argument pinnlog cannot use (window < 1, unknown binning, ``every(0)``, labels that do not match ...).

    A ``ValueError``, so callers that caught the bare ``ValueError`` of older releases still do.
    """


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong kind (a function where a schedule is expected, a list where a dict is)."""


#: Old names of :class:`ArgumentError` (metrics, ``analyze``/``compare`` options, ``pinnlog watch`` options).
MetricArgumentError = ArgumentError
ReportArgumentError = ArgumentError
WatchArgumentError = ArgumentError


class RecorderError(ArgumentError):
    """A mistake in how the recorder is used (bad argument, step going backwards, existing path ...)."""


class PhaseDetectionError(ArgumentError):
    """The signal or an argument cannot be used for phase detection."""


# -- stores ---------------------------------------------------------------------------------------------
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


class NothingToReportError(EmptyRunError):
    """The store holds none of the data any figure needs."""


class MissingGroupError(PinnlogError, KeyError):
    """A metric needs a group (or variable) that was not recorded."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class CorruptStoreError(PinnlogError, ValueError):
    """The store's metadata or chunks are damaged or not what format 1 allows."""


class PaperLogsError(PinnlogError, ValueError):
    """The directory does not hold the authors' logs in the expected format."""


# -- the world outside -----------------------------------------------------------------------------------
class WriterError(PinnlogError, RuntimeError):
    """The background writer failed (disk full, permission, ...); steps committed before it are safe."""


class ReportOutputError(PinnlogError, OSError):
    """The output directory cannot be created or written."""


class SchedulerError(PinnlogError, ConnectionError):
    """The dask scheduler cannot be reached, or its workers cannot read a run."""


# -- warnings ----------------------------------------------------------------------------------------------
class DegenerateMetricWarning(PinnlogWarning):
    """A metric met a degenerate input (zero variance, zero mean, NaN) and returned inf or NaN there."""


class PhaseDetectionWarning(PinnlogWarning):
    """Phase detection skipped samples it cannot place on a log scale (non-positive or non-finite values)."""


class PaperLogsWarning(PinnlogWarning):
    """The authors' whole-net logs disagree with their per-layer rows; the per-layer rows were imported."""


class RecorderWarning(PinnlogWarning):
    """Base of the recorder's warnings: training goes on, and the message says what is (not) recorded."""


class UnscheduledCaptureWarning(RecorderWarning):
    """``residuals=`` or ``probe=`` was given with no schedule that records it (``*_schedule=`` or ``raw_schedule=``)."""


class RecordingStoppedWarning(RecorderWarning):
    """Writing the store failed (``on_error="warn"``, or while closing after an exception); training goes on unrecorded.

    The steps committed before the failure are in the store.
    """


class RecorderNotClosedWarning(RecorderWarning):
    """A ``Recorder`` still open when the interpreter exits was closed then, with status ``"interrupted"``."""


class NonFiniteGradientWarning(RecorderWarning):
    """A capture met NaN or inf batch gradients; they are stored as they are (said once per run)."""


class EngineFallbackWarning(RecorderWarning):
    """The vectorised gradient engine fell back to the loop of K ``batch_loss`` calls (the reason is in the message)."""


class OverlapOffWarning(RecorderWarning):
    """``overlap=True`` was asked for, but gradient captures stay synchronous (the reason is in the message)."""


class WriterBehindWarning(RecorderWarning):
    """The writer thread kept training waiting; nothing is dropped (capture less often, or raw arrays more sparsely)."""


class ModelChangedWarning(RecorderWarning):
    """Tensors were frozen, replaced, removed or made trainable after the ``Recorder`` was built (NaN or unrecorded there)."""


class StaleOptimizerWarning(RecorderWarning):
    """Tensors changed but the optimizer the recorder reads did not step them; their Adam statistics are NaN.

    Typically a new optimizer that was not assigned to ``rec.optimizer``.
    """


class ExportError(PinnlogError, ValueError):
    """An export that cannot be done (nothing to export, a writer package not installed)."""


class ReadOnlyStoreError(PinnlogError, PermissionError):
    """``repair_run`` on a store this process cannot write: nothing is changed."""


class WidthsMismatchError(PaperLogsError):
    """The logs have another number of weight matrices than ``widths`` describe (``n_tensors``, ``widths``)."""

    def __init__(self, message: str, *, n_tensors: int, widths: list[int]):
        super().__init__(message)
        self.n_tensors, self.widths = n_tensors, widths
