"""What the recorder records, one class per capture; each keeps *when* (``should_compute``) apart from *what* (``compute``).

=====================  ==========================  ==================================================
capture                groups it fills             reduced / raw
=====================  ==========================  ==================================================
``GradientMoments``    gradient_stats, batch_grad  sum_mu2, sum_sigma2, sum_rms2 / K x P rows
``Weights``            gradient_stats, weights     sum_w2 / flat weights
``OptimizerMoments``   gradient_stats, opt. state  sum_m_hat2, sum_adam_denom2 / exp_avg, exp_avg_sq
``Residuals``          residuals                   residual, rba_weight per sample
``Activations``        activations                 (probe, units) per layer
=====================  ==========================  ==================================================

A new capture is a :class:`Capture` subclass returning :class:`Rows` (docs/architecture.md says how);
the rows carry their variable names, so neither the recorder's dispatch nor the writer changes.
"""

from pinnlog.recorder.captures.activations import Activations, ActivationSite, activation_sites, record_activations
from pinnlog.recorder.captures.base import Capture, Rows, merge_rows
from pinnlog.recorder.captures.gradients import (
    ENGINE_CODES,
    GradientCapture,
    GradientMoments,
    capture_gradients,
    check_loss,
    flat_gradient,
    moments,
    per_tensor_moments,
)
from pinnlog.recorder.captures.layout import (
    FROZEN,
    GONE,
    TRAINED,
    UNTRAINED,
    Layout,
    Live,
    ParameterTracker,
    build_layout,
    is_bias,
)
from pinnlog.recorder.captures.optimizer import OptimizerMoments, adam_reductions, flat_adam_state, is_adam
from pinnlog.recorder.captures.residuals import Residuals, record_residuals
from pinnlog.recorder.captures.state import frozen_training_state
from pinnlog.recorder.captures.weights import Weights, flat_weights, sum_w2

__all__ = [
    "ENGINE_CODES",
    "FROZEN",
    "GONE",
    "TRAINED",
    "UNTRAINED",
    "ActivationSite",
    "Activations",
    "Capture",
    "GradientCapture",
    "GradientMoments",
    "Layout",
    "Live",
    "OptimizerMoments",
    "ParameterTracker",
    "Residuals",
    "Rows",
    "Weights",
    "activation_sites",
    "adam_reductions",
    "build_layout",
    "capture_gradients",
    "check_loss",
    "flat_adam_state",
    "flat_gradient",
    "flat_weights",
    "frozen_training_state",
    "is_adam",
    "is_bias",
    "merge_rows",
    "moments",
    "per_tensor_moments",
    "record_activations",
    "record_residuals",
    "sum_w2",
]
