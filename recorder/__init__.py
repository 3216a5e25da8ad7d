"""pinnlog.recorder: capture batch-gradient statistics from a PyTorch training loop into a Zarr store.

    from pinnlog.recorder import Recorder, every, logspaced

``Recorder`` needs torch; ``schedules`` and ``store`` (the commit protocol) do not, so this package
imports torch only when ``Recorder`` is first used.
"""

from pinnlog.recorder.schedules import Schedule, every, logspaced, steps

__all__ = ["Recorder", "Schedule", "every", "logspaced", "stacked_batch_losses", "steps"]


def __getattr__(name):
    if name == "Recorder":
        from pinnlog.recorder.recorder import Recorder

        return Recorder
    if name == "stacked_batch_losses":
        from pinnlog.recorder.engines import stacked_batch_losses

        return stacked_batch_losses
    raise AttributeError(f"module 'pinnlog.recorder' has no attribute {name!r}")
