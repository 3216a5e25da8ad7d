"""Fixtures of the scaling tests: one-thread torch (the `cli` fixture is in tests/conftest.py)."""

from __future__ import annotations

try:
    import torch
except ImportError:  # the tests that need it skip themselves (pytest.importorskip)
    torch = None

if torch is not None:
    torch.set_num_threads(1)  # tiny models on a shared 2-core box: a second thread only spins
