"""Put the training state back after a capture, so a recorded run trains bit for bit like an unrecorded one."""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

__all__ = ["frozen_training_state"]


@contextmanager
def frozen_training_state(model: nn.Module):
    """Run a block, then put back RNG states, train/eval modes and buffers exactly as they were.

    The capture's forward passes would otherwise draw dropout masks from the training RNG stream and
    move batch-norm running statistics, and training would no longer be the unrecorded one.
    """
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    py_rng, np_rng = random.getstate(), np.random.get_state()
    modules = list(model.modules())
    modes = [m.training for m in modules]
    buffers = [(m, name, buf, buf.detach().clone()) for m in modules for name, buf in m._buffers.items() if buf is not None]
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
        with torch.no_grad():
            for m, name, buf, saved in buffers:
                m._buffers[name] = buf
                buf.copy_(saved)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        random.setstate(py_rng)
        np.random.set_state(np_rng)
