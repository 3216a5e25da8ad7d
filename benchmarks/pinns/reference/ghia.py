"""Published benchmark values of Ghia, Ghia & Shin (1982), typed in from their Table I.

u-velocity along the vertical line through the cavity's centre (x = 0.5), uniform lid speed 1.

Reference
---------
U. Ghia, K. N. Ghia, C. T. Shin, High-Re solutions for incompressible flow using the Navier–Stokes
equations and a multigrid method, J. Comput. Phys. 48 (1982) 387–411, Table I.
"""

import numpy as np

__all__ = ["GHIA_U", "GHIA_Y"]

GHIA_Y = np.array(
    [1.0000, 0.9766, 0.9688, 0.9609, 0.9531, 0.8516, 0.7344, 0.6172, 0.5000,
     0.4531, 0.2813, 0.1719, 0.1016, 0.0703, 0.0625, 0.0547, 0.0000]
)  # fmt: skip

GHIA_U = {
    100: np.array(
        [1.00000, 0.84123, 0.78871, 0.73722, 0.68717, 0.23151, 0.00332, -0.13641, -0.20581,
         -0.21090, -0.15662, -0.10150, -0.06434, -0.04775, -0.04192, -0.03717, 0.00000]
    ),
    1000: np.array(
        [1.00000, 0.65928, 0.57492, 0.51117, 0.46604, 0.33304, 0.18719, 0.05702, -0.06080,
         -0.10648, -0.27805, -0.38289, -0.29730, -0.22220, -0.20196, -0.18109, 0.00000]
    ),
}  # fmt: skip
