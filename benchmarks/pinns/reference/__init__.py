"""Reference solutions of the benchmark PDEs, computed by our own solvers (verified in tests/benchmarks).

- ``allen_cahn``: Fourier pseudo-spectral in x, ETDRK4 in t (Cox & Matthews 2002; coefficients by the
  contour integral of Kassam & Trefethen 2005).
- ``burgers``: the Cole–Hopf exact solution evaluated by Gauss–Hermite quadrature.
- ``cavity``: steady stream function–vorticity finite differences solved by Newton's method, checked
  against Ghia, Ghia & Shin (1982).
- Helmholtz has a closed form (``benchmarks.pinns.helmholtz.exact_solution``).
"""
