"""Benchmarks and measurement scripts of pinnlog (not installed; run them from the repository root).

Speed and accuracy scripts print figures measured in one run (docs/performance.md); ``benchmarks.pinns``
holds the paper's four PINN benchmarks (Allen–Cahn, Helmholtz, Burgers, lid-driven cavity) as recorded
training scripts with our own verified reference solutions (docs/reproduction.md)::

    python -m benchmarks.pinns.run allen_cahn --rba --out runs/ac_rba.zarr
"""
