"""Find the training phases (fitting, diffusion, total diffusion) in a curve such as the gradient SNR.

The curve is segmented in log10 value against log10 step with ruptures, after block-averaging onto
a uniform log-step grid; each boundary is refined on the raw samples, and each segment is labelled
by the rule of ``docs/phases.md``.

>>> from pinnlog.analyzer.datasets import piecewise_snr
>>> snr, truth = piecewise_snr(3, noise=0.1, seed=0)
>>> table = detect_phases(snr)
>>> [segment.first_step for segment in table.segments[1:]] == truth
True
"""

from pinnlog.analyzer.phases.detect import detect_phases
from pinnlog.analyzer.phases.detector import PhaseDetectionError, PhaseDetector
from pinnlog.analyzer.phases.labels import DIFFUSION, FITTING, TOTAL_DIFFUSION, label_segments
from pinnlog.analyzer.phases.table import Phase, PhaseTable

__all__ = [
    "DIFFUSION",
    "FITTING",
    "TOTAL_DIFFUSION",
    "Phase",
    "PhaseDetectionError",
    "PhaseDetector",
    "PhaseTable",
    "detect_phases",
    "label_segments",
]
