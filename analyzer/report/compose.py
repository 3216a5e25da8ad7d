"""Which figures a report has, and how each is laid out from the figure functions.

One composer per figure serves both ``analyze`` (one run: colours per quantity or per layer, phases
shaded) and ``compare`` (several runs: one colour per run, phase boundaries as dashed lines). A composer
gets the runs' computed metric outputs and returns a drawn figure, or the reason it was skipped (the
data was not recorded). Composers never compute a metric either: ``build.py`` did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from pinnlog.analyzer.report import figures as F
from pinnlog.analyzer.report import figures_residuals as R
from pinnlog.analyzer.report.figures_compare import plot_dynamics, plot_layers_overlay, plot_steps_to_error

__all__ = ["FIGURES", "Drawn", "RunResult", "Skipped", "compose_figures", "compose_one"]


@dataclass
class RunResult:
    """One run's computed metric outputs (eager xarray objects) and what could not be computed."""

    label: str
    path: str
    attrs: dict
    recorded: dict[str, int]
    values: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # metric name -> why (names the recorder option)
    phases: Any = None
    phases_note: str | None = None
    layer_phases: Any = None  # {layer: PhaseTable} from the per-layer SNR (Fig. A.13)
    steps_to_error: dict[float, int | None] = field(default_factory=dict)
    smooth: int = 1
    #: compare only: ``{threshold: step or None}`` over the levels the comparison uses (requested ones,
    #: then adaptive ones, keyed by name), and those levels (``comparison.matched_thresholds``)
    compare_steps: dict[Any, int | None] = field(default_factory=dict)
    compare_levels: list[dict] = field(default_factory=list)

    def drawn(self, name: str) -> Any:
        """The curve to draw: the smoothed one when smoothing is on, else the raw metric output."""
        return self.values.get(f"{name}_smooth", self.values.get(name))

    def why_missing(self, name: str) -> str:
        return self.missing.get(name, f"{name} was not computed")


@dataclass
class Drawn:
    name: str
    title: str
    figure: Figure
    notes: list[str] = field(default_factory=list)


@dataclass
class Skipped:
    figure: str
    reason: str


#: name -> (title, caption). The order is the order in the report.
FIGURES: dict[str, tuple[str, str]] = {
    "dynamics": (
        "Training dynamics",
        "The runs on one step axis, as the paper's Figs. 6-7: SNR (Eq 8), test error (Eq 7) with the level "
        "the headline compares at, dispersion of the residuals (Eq 20) and the RBA weights λ (Eq 28); "
        "dashed lines: each run's phase onsets.",
    ),
    "snr": (
        "Gradient SNR",
        "Whole-net SNR = ‖μ‖/‖σ‖ over the batch gradients (Eq 8; paper Fig 6-8) with the "
        "norms of their mean and std (Fig A14); phases shaded; SNR = 1 separates the deterministic "
        "(above) from the stochastic regime.",
    ),
    "snr_per_layer": ("SNR per layer", "SNR of each layer's weight matrix (paper Fig A13)."),
    "srr": (
        "SRR_B, SRR_C and test error",
        "Batch homogeneity SRR_B (Eq 17) and Adam's step-wise ratio SRR_C "
        "(Eq 13) with the relative L2 test error on the right axis (paper Fig 10).",
    ),
    "mutual_information": (
        "Mutual information per layer",
        "I(X;T) = H(T) of each layer's binned activations on the probe inputs (Eq 31, relative binning; paper Fig 11 a-b).",
    ),
    "binarization": (
        "Binarization per layer",
        "Share of activations in the extreme bins of each neuron's range (paper Fig 11 c-d).",
    ),
    "weight_norms": ("Weight norm per layer", "‖θ_l‖ of each layer's weights (paper Fig 11 e-f)."),
    "loss": ("Loss and test error", "Training loss and relative L2 test error; dotted lines mark the error thresholds."),
    "residuals": (
        "Residuals",
        "Distribution of |residual| over the collocation points, their dispersion over "
        "time (1 = homogeneous, Eq 20) and the RBA weights λ (Eq 28) when recorded.",
    ),
    "steps_to_error": (
        "Steps to reach a test error",
        "First step at which each run's relative L2 test error is at or below each threshold.",
    ),
}


def _have(runs: Sequence[RunResult], name: str) -> list[RunResult]:
    return [r for r in runs if name in r.values]


def _arg(runs: Sequence[RunResult], name: str, single: bool, pick: Callable[[RunResult, str], Any]) -> Any:
    """One run's object, or ``{label: object}`` over the runs that have it; None when none has it."""
    have = _have(runs, name)
    if not have:
        return None
    return pick(have[0], name) if single else {r.label: pick(r, name) for r in have}


def _drawn(r: RunResult, name: str) -> Any:
    return r.drawn(name)


def _raw(r: RunResult, name: str) -> Any:
    return r.values[name]


def _notes(runs: Sequence[RunResult], name: str, what: str, single: bool) -> list[str]:
    return [f"{what} not drawn{'' if single else ' for ' + r.label}: {r.why_missing(name)}" for r in runs if name not in r.values]


def _phases(runs: Sequence[RunResult], single: bool) -> Any:
    if single:
        return runs[0].phases
    return {r.label: r.phases for r in runs if r.phases is not None} or None


def _skip(runs: Sequence[RunResult], figure: str, name: str, single: bool) -> Skipped:
    reasons = {r.why_missing(name) for r in runs}
    if single or len(reasons) == 1:
        reason = runs[0].why_missing(name)
        if not single:  # one reason for all: say it of the runs
            reason = reason.replace("this run has", "the runs have", 1).replace("this run's", "the runs'", 1)
        return Skipped(figure, reason)
    return Skipped(figure, "; ".join(f"{r.label}: {r.why_missing(name)}" for r in runs))


def _snr(runs, single, colors) -> Drawn | Skipped:
    if not _have(runs, "snr"):
        return _skip(runs, "snr", "snr", single)
    fig, axes = F.new_figure(2, 1, width=6.2, height=4.2)
    phases = _phases(runs, single)
    raw = _arg(runs, "snr", single, _raw) if runs[0].smooth > 1 else None
    F.plot_snr(_arg(runs, "snr", single, _drawn), raw=raw, window=runs[0].smooth, phases=phases, ax=axes[0, 0], colors=colors)
    axes[0, 0].set_title("a) SNR (Eq 8)", loc="left", fontsize="medium")
    notes = _notes(runs, "gradient_norms", "mean/std of the gradient", single)
    if _have(runs, "gradient_norms"):
        F.plot_gradient_norms(_arg(runs, "gradient_norms", single, _drawn), phases=phases, ax=axes[0, 1], colors=colors)
        axes[0, 1].set_title("b) mean and std of the gradient", loc="left", fontsize="medium")
    else:
        axes[0, 1].set_visible(False)
    return Drawn("snr", FIGURES["snr"][0], fig, notes)


def _srr(runs, single, colors) -> Drawn | Skipped:
    if not _have(runs, "srr_b"):
        return _skip(runs, "srr", "srr_b", single)
    fig, axes = F.new_figure(1, 1, width=7.5, height=4.5)
    F.plot_srr(
        _arg(runs, "srr_b", single, _drawn),
        _arg(runs, "srr_c", single, _drawn),
        test_error=_arg(runs, "test_error", single, _raw),
        phases=_phases(runs, single),
        ax=axes[0, 0],
        colors=colors,
    )
    notes = _notes(runs, "srr_c", "SRR_C", single) + _notes(runs, "test_error", "test error", single)
    return Drawn("srr", FIGURES["srr"][0], fig, notes)


def _per_layer(name: str, figure: str, plot: Callable, ylabel: str, logy: bool, percent: bool = False):
    def compose(runs, single, colors) -> Drawn | Skipped:
        if not _have(runs, name):
            return _skip(runs, figure, name, single)
        if single:
            fig, axes = F.new_figure(1, 1, width=7.5, height=4.5)
            plot(runs[0].drawn(name), phases=runs[0].phases, ax=axes[0, 0])
        else:
            fig = plot_layers_overlay(
                _arg(runs, name, False, _drawn),
                ylabel=ylabel,
                logy=logy,
                phases=_phases(runs, False),
                colors=colors,
                percent=percent,
            )
        return Drawn(figure, FIGURES[figure][0], fig, [] if single else _notes(runs, name, FIGURES[figure][0], False))

    return compose


def _loss(runs, single, colors) -> Drawn | Skipped:
    if not _have(runs, "loss") and not _have(runs, "test_error"):
        return _skip(runs, "loss", "loss", single)
    fig, axes = F.new_figure(2, 1, width=6.2, height=4.2)
    phases = _phases(runs, single)
    thresholds = tuple(runs[0].steps_to_error)
    terms = runs[0].values.get("loss_terms") if single else None
    panels: tuple[tuple[str, Callable[..., Any], dict[str, Any]], ...] = (
        ("loss", F.plot_loss, {"terms": terms}),
        ("test_error", F.plot_test_error, {"thresholds": thresholds}),
    )
    for i, (name, plot, kwargs) in enumerate(panels):
        if _have(runs, name):
            plot(_arg(runs, name, single, _raw), phases=phases, ax=axes[0, i], colors=colors, **kwargs)
            axes[0, i].set_title(f"{'ab'[i]}) {name.replace('_', ' ')}", loc="left", fontsize="medium")
        else:
            axes[0, i].set_visible(False)
    notes = _notes(runs, "loss", "loss", single) + _notes(runs, "test_error", "test error", single)
    return Drawn("loss", FIGURES["loss"][0], fig, notes)


def _residuals(runs, single, colors) -> Drawn | Skipped:
    if not _have(runs, "residual") and not _have(runs, "residual_homogeneity"):
        return _skip(runs, "residuals", "residual", single)
    with_rba = bool(_have(runs, "rba_weight"))
    fig, axes = F.new_figure(3 if with_rba else 2, 1, width=5.0, height=4.0)
    final = (lambda r, name: r.values[name]) if single else (lambda r, name: r.values[name].isel(step=-1))
    if _have(runs, "residual"):
        R.plot_residual_distribution(_arg(runs, "residual", single, final), ax=axes[0, 0], colors=colors)
        axes[0, 0].set_title("a) |residual|" + ("" if single else " at each run's last capture"), loc="left", fontsize="medium")
    else:
        axes[0, 0].set_visible(False)
    if _have(runs, "residual_homogeneity"):
        R.plot_homogeneity(
            _arg(runs, "residual_homogeneity", single, _raw), phases=_phases(runs, single), ax=axes[0, 1], colors=colors
        )
        axes[0, 1].set_title("b) dispersion of |residual|", loc="left", fontsize="medium")
    else:
        axes[0, 1].set_visible(False)
    if with_rba:
        R.plot_rba_weight_distribution(_arg(runs, "rba_weight", single, final), ax=axes[0, 2], colors=colors)
        axes[0, 2].set_title("c) RBA weights λ", loc="left", fontsize="medium")
    notes = _rba_notes(runs, single) + _notes(runs, "residual", "residual distribution", single)
    return Drawn("residuals", FIGURES["residuals"][0], fig, notes)


def _headline_level(runs: Sequence[RunResult]) -> tuple[float, str] | None:
    """The lowest compared level every run with a test error reaches (the headline's), as (value, name)."""
    have = _have(runs, "test_error")
    levels = runs[0].compare_levels
    common = [t for t in levels if have and all(r.compare_steps.get(t["name"]) is not None for r in have)]
    if not common:
        return None
    level = min(common, key=lambda t: t["threshold"])
    return level["threshold"], f"{level['name']}"


def _dynamics(runs, single, colors) -> Drawn | Skipped | None:
    if single:
        return None  # analyze draws each of these panels on its own
    if not _have(runs, "snr") and not _have(runs, "test_error"):
        return _skip(runs, "dynamics", "snr", False)
    fig = plot_dynamics(
        _arg(runs, "snr", False, _drawn) or {},
        _arg(runs, "test_error", False, _raw) or {},
        homogeneity=_arg(runs, "residual_homogeneity", False, _raw),
        rba_weight=_arg(runs, "rba_weight_spread", False, _raw),
        phases=_phases(runs, False),
        level=_headline_level(runs),
        colors=colors,
    )
    notes = _notes(runs, "residual_homogeneity", "residual dispersion", False)
    return Drawn("dynamics", FIGURES["dynamics"][0], fig, notes)


def _rba_notes(runs: Sequence[RunResult], single: bool) -> list[str]:
    """Which runs have no RBA weights, without telling a run trained without RBA to record them."""
    without = [r.label for r in runs if "rba_weight" not in r.values and "residual" in r.values]
    if not without:
        return []
    how = "an RBA run records them by returning (residual, λ) from Recorder(residuals=...)"
    if single:
        return [f"RBA weights (Eq 28) not drawn: this run recorded none; {how}"]
    having = [r.label for r in runs if "rba_weight" in r.values]
    if having:
        return [
            f"RBA weights drawn for {', '.join(having)} only: {', '.join(without)} recorded none "
            "(a run trained without RBA has none to record)"
        ]
    return [f"RBA weights (Eq 28) not drawn: no run recorded them; {how}"]


def _steps_to_error(runs, single, colors) -> Drawn | Skipped | None:
    if single:
        return None  # a table in the report says it for one run
    if not _have(runs, "test_error"):
        return _skip(runs, "steps_to_error", "test_error", False)
    have = _have(runs, "test_error")
    steps = {r.label: (r.compare_steps or r.steps_to_error) for r in have}
    if not any(s is not None for per_run in steps.values() for s in per_run.values()):
        return Skipped("steps_to_error", "no run reached any test-error threshold (its test error has no finite value)")
    fig, axes = F.new_figure(1, 1, width=7.0, height=4.5)
    plot_steps_to_error(steps, ax=axes[0, 0], colors=colors)
    return Drawn("steps_to_error", FIGURES["steps_to_error"][0], fig, _notes(runs, "test_error", "test error", False))


COMPOSERS: dict[str, Callable] = {
    "dynamics": _dynamics,
    "snr": _snr,
    "snr_per_layer": _per_layer("snr_per_layer", "snr_per_layer", F.plot_snr_per_layer, "SNR", True),
    "srr": _srr,
    "mutual_information": _per_layer(
        "mutual_information", "mutual_information", F.plot_mutual_information, "I(X;T) [bits]", False
    ),
    "binarization": _per_layer("binarization", "binarization", F.plot_binarization, "binary activations", False, percent=True),
    "weight_norms": _per_layer("weight_norm", "weight_norms", F.plot_weight_norms, "‖θ_l‖", False),
    "loss": _loss,
    "residuals": _residuals,
    "steps_to_error": _steps_to_error,
}


def compose_one(runs: Sequence[RunResult], name: str) -> Drawn | Skipped | None:
    """Figure ``name`` of :data:`FIGURES` for ``runs`` (one run -> analyze, several -> compare), or why not."""
    with F.figure_style():
        return COMPOSERS[name](runs, len(runs) == 1, F.run_colors([r.label for r in runs]))


def compose_figures(runs: Sequence[RunResult]) -> Iterator[Drawn | Skipped]:
    """Draw every figure the runs' data allows, in report order; one run -> analyze, several -> compare."""
    for name in FIGURES:
        result = compose_one(runs, name)
        if result is not None:
            yield result
