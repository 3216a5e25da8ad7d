"""The paper's PINN benchmarks, each in vanilla and RBA form, recorded with pinnlog.

One module per PDE (``allen_cahn``, ``helmholtz``, ``burgers``, ``cavity``) defines the problem (collocation
sampling, PDE residual, boundary/initial loss, reference solution on a test grid); ``trainer`` trains any of
them the way the paper does (§3, Appendix B); ``configs`` holds the ``paper`` and ``cpu-small`` set-ups;
``run`` is the command line; ``reference`` holds the numerical reference solvers (numpy only).
"""
