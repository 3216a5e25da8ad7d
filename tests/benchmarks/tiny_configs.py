"""Benchmark configs cut down to run in seconds, for the tests of the PINN trainer and its recording."""

from dataclasses import replace

from benchmarks.pinns.configs import make_config


def tiny_config(name: str, *, steps: int, hidden: tuple[int, ...], n_collocation: int, n_boundary: int, n_probe: int, **changes):
    """The ``cpu-small`` config of benchmark ``name`` at the given sizes: ``steps`` steps over 4 batches, the
    test error every 2 steps (``changes``: any other field, such as the recording schedules)."""
    sizes = {"hidden": hidden, "n_collocation": n_collocation, "n_boundary": n_boundary, "n_probe": n_probe}
    return replace(make_config(name, "cpu-small", steps=steps), n_batches=4, test_every=2, **sizes, **changes)
