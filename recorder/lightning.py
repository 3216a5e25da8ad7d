"""A PyTorch Lightning callback that records a ``LightningModule`` run with pinnlog.

    from pinnlog.recorder import every
    from pinnlog.recorder.lightning import PinnlogCallback

    fixed = [next(iter(loader)) for loader in ...]          # K fixed batches, same for the whole run
    trainer = L.Trainer(max_steps=10_000, callbacks=[PinnlogCallback("runs/mlp.zarr", batches=fixed,
                                                                     schedule=every(100))])
    trainer.fit(module, loader)

The callback opens a :class:`~pinnlog.recorder.Recorder` when training starts (on the module and its
optimizer), calls ``rec.step`` from ``on_train_batch_end`` (after the optimizer step, once per
optimizer step, so gradient accumulation is handled) and closes the store when training ends
("complete") or fails ("interrupted"). Under a multi-process strategy (DDP) it records with
:class:`~pinnlog.recorder.distributed.DistributedRecorder`. Needs ``pip install 'pinnlog[lightning]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from pinnlog.analyzer.errors import RecorderError
from pinnlog.recorder.recorder import Recorder
from pinnlog.recorder.schedules import Schedule, every

if TYPE_CHECKING:  # one name for the type checker; at run time either package provides the same class
    from lightning.fabric.utilities.apply_func import move_data_to_device
    from lightning.pytorch.callbacks import Callback
else:
    try:
        from lightning.fabric.utilities.apply_func import move_data_to_device
        from lightning.pytorch.callbacks import Callback
    except ImportError:  # the standalone package name
        try:
            from lightning_fabric.utilities.apply_func import move_data_to_device
            from pytorch_lightning.callbacks import Callback
        except ImportError as exc:
            raise ImportError("pinnlog.recorder.lightning needs Lightning >= 2.2: pip install 'pinnlog[lightning]'") from exc

__all__ = ["PinnlogCallback"]


def _ignore_log(*args, **kwargs) -> None:
    return None


@contextlib.contextmanager
def _muted_logging(module):
    """``self.log`` does nothing inside: the capture's K extra ``training_step`` calls must not reach the logs."""
    module.log = module.log_dict = _ignore_log  # instance attributes shadow the methods
    try:
        yield
    finally:
        del module.log, module.log_dict


def _loss_of(output, where: str):
    if isinstance(output, Mapping):
        output = output.get("loss")
    if not isinstance(output, torch.Tensor):
        raise RecorderError(
            f"{where} returned {type(output).__name__}, not a loss tensor (or a dict with 'loss'); "
            "pass batch_loss= to the PinnlogCallback"
        )
    return output


class PinnlogCallback(Callback):
    """Record a Lightning training run: batch-gradient statistics on a schedule, scalars every step.

    Give the K fixed batches one of two ways:

    - ``batches=[b0, b1, ...]``: a fixed list of batches as the dataloader yields them (moved to the
      module's device once); the loss of batch ``k`` is ``module.training_step(batches[k], k)`` (its
      ``loss`` entry if it returns a dict), with ``self.log`` muted while the recorder calls it. Needs
      automatic optimization (a manual ``training_step`` would step the optimizer).
    - ``batch_loss=fn, n_batches=K``: ``fn(module, b)`` returns the loss of fixed batch ``b`` (as for
      :class:`~pinnlog.recorder.Recorder`).

    Parameters
    ----------
    path : str or path-like
        The run store (a ``*.zarr`` directory or an fsspec URL).
    batches : sequence, optional
        The K >= 2 fixed batches (see above).
    batch_loss : callable, optional
        ``batch_loss(module, b) -> scalar tensor``; with ``n_batches``.
    n_batches : int, optional
        K when ``batch_loss`` is given (batches per process under DDP).
    schedule, raw_schedule : Schedule, int or list of int
        As for ``Recorder``; steps are optimizer steps counted from 0 (``trainer.global_step - 1``).
    scalars : callable, optional
        ``scalars(trainer, module) -> dict`` of more numbers to record at each step (e.g.
        ``{"test_error": ...}`` every n steps, ``{}`` otherwise). The loss Lightning reports is
        recorded as ``loss``.
    optimizer_index : int
        Which of ``trainer.optimizers`` is read (Adam/AdamW moments give SRR_C).
    **options
        Any other ``Recorder`` argument: ``shared_loss``, ``residuals``, ``probe``, ``layers``,
        ``config``, ``overwrite``, ``residual_schedule``, ``probe_schedule``, ``on_error``.
    """

    def __init__(
        self,
        path,
        *,
        batches: Sequence | None = None,
        batch_loss: Callable | None = None,
        n_batches: int | None = None,
        schedule: Schedule | int | Sequence[int] | None = every(100),
        raw_schedule: Schedule | int | Sequence[int] | None = None,
        scalars: Callable[[Any, Any], Mapping[str, Any]] | None = None,
        optimizer_index: int = 0,
        **options: Any,
    ):
        if (batches is None) == (batch_loss is None):
            raise RecorderError("PinnlogCallback needs exactly one of batches=[fixed batches] or batch_loss=fn with n_batches=K")
        if batches is not None:
            if isinstance(batches, (str, bytes)) or not isinstance(batches, Sequence) or len(batches) < 2:
                raise RecorderError(
                    "batches= must be a list of K >= 2 fixed batches (e.g. the first K the dataloader "
                    "yields, kept for the whole run)"
                )
            if n_batches is not None and n_batches != len(batches):
                raise RecorderError(f"n_batches={n_batches} but {len(batches)} batches were given; leave n_batches out")
            n_batches = len(batches)
        elif n_batches is None:
            raise RecorderError("batch_loss= needs n_batches=K, the number of fixed batches it takes")
        if scalars is not None and not callable(scalars):
            raise RecorderError("scalars= must be a function scalars(trainer, module) -> dict of numbers")
        self.path = path
        self._batches, self._batch_loss, self._n_batches = batches, batch_loss, n_batches
        self._schedule, self._raw_schedule, self._scalars = schedule, raw_schedule, scalars
        self._optimizer_index, self._options = optimizer_index, options
        self._device_batches: list | None = None
        self.recorder: Any = None
        self._last_step = -1

    # -- the loss of one fixed batch -----------------------------------------------------------------

    def _training_step_loss(self, module, b: int):
        assert self._device_batches is not None  # on_train_start moved them before handing this to the recorder
        with _muted_logging(module):
            output = module.training_step(self._device_batches[b], b)
        return _loss_of(output, f"training_step(batches[{b}], {b})")

    # -- Lightning hooks -----------------------------------------------------------------------------

    def on_train_start(self, trainer, pl_module) -> None:
        optimizers = list(trainer.optimizers)
        if not 0 <= self._optimizer_index < len(optimizers):
            raise RecorderError(
                f"optimizer_index={self._optimizer_index} but the trainer has {len(optimizers)} optimizer(s); pick one of them"
            )
        batch_loss = self._batch_loss
        if batch_loss is None:
            if not pl_module.automatic_optimization:
                raise RecorderError(
                    "with manual optimization training_step steps the optimizer itself, so it cannot "
                    "give the loss of a fixed batch; pass batch_loss=fn and n_batches=K instead of batches="
                )
            assert self._batches is not None  # __init__ takes exactly one of batches= and batch_loss=
            self._device_batches = [move_data_to_device(b, pl_module.device) for b in self._batches]
            batch_loss = self._training_step_loss
        optimizer = optimizers[self._optimizer_index]
        common = dict(schedule=self._schedule, raw_schedule=self._raw_schedule, **self._options)
        if getattr(trainer, "world_size", 1) > 1:
            from pinnlog.recorder.distributed import DistributedRecorder

            self.recorder = DistributedRecorder(self.path, pl_module, optimizer, batch_loss, self._n_batches, **common)
        else:
            self.recorder = Recorder(self.path, pl_module, optimizer, batch_loss, self._n_batches, **common)
        self._last_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step - 1
        if self.recorder is None or step <= self._last_step:
            return  # no optimizer step since the last call (gradient accumulation)
        self._last_step = step
        values = dict(self._scalars(trainer, pl_module)) if self._scalars is not None else {}
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and "loss" not in values:
            values["loss"] = loss
        self.recorder.step(step, **values)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            recorder.close("complete")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            recorder.__exit__(type(exception), exception, exception.__traceback__)  # "interrupted", never raises
