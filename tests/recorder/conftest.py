import pytest

try:
    import torch
except ImportError:  # the recorder tests skip themselves (pytest.importorskip)
    torch = None

if torch is not None:
    # The test models are tiny: a second OpenMP thread only adds spin-waiting on the shared 2-core CI box
    # (measured: a 50-step PINN run takes 0.3 s on one thread, 5.7 s on two under load).
    torch.set_num_threads(1)


@pytest.fixture
def run_path(tmp_path):
    """Where a test's run store goes."""
    return tmp_path / "run.zarr"
