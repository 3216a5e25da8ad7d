"""Figures that do not mislead (issue 18): each test asserts the drawn data, limits or labels."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgb

from pinnlog.analyzer.phases import Phase, PhaseTable
from pinnlog.analyzer.report import figures as F
from pinnlog.analyzer.report.figures_residuals import plot_rba_weight_distribution


def per_layer(values, steps, name="mutual_information", **attrs) -> xr.DataArray:
    values = np.asarray(values, dtype=float)
    n_layers = values.shape[1]
    return xr.DataArray(
        values,
        dims=("step", "layer"),
        coords={"step": steps, "layer": np.arange(n_layers), "layer_name": ("layer", [f"layer_{i}" for i in range(n_layers)])},
        name=name,
        attrs=attrs,
    )


def cielab(rgb) -> np.ndarray:
    """sRGB (0..1) to CIE L*a*b* (D65), the textbook formulas: distances there follow perceived difference."""
    c = np.asarray(rgb, dtype=float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def rendered(ax):
    ax.figure.savefig(io.BytesIO(), format="png")  # lays out the ticks and the text as in the report
    return ax


def test_saturated_mutual_information_is_shown_on_zero_to_log2_n_and_named():
    n = 256
    rng = np.random.default_rng(0)
    # one-sample rounding dips below log2 N = 8 bits: on a zoomed axis these look like crashes
    values = 8.0 - rng.choice([0.0, 0.0078, 0.0039], size=(12, 3))
    ax = rendered(F.plot_mutual_information(per_layer(values, np.arange(12) * 10 + 10, n_samples=n, units="bit")))
    low, high = ax.get_ylim()
    assert low == 0.0 and np.log2(n) <= high <= 1.1 * np.log2(n)
    assert any(np.allclose(l.get_ydata(), np.log2(n)) for l in ax.get_lines() if l.get_label().startswith("_"))
    assert any(t.get_text() == "saturated at log₂ N = 8 bits (N = 256)" for t in ax.texts)


def test_binarization_tick_labels_have_the_precision_the_ticks_need():
    values = np.linspace(0.075, 0.175, 8)[:, None] * np.ones((1, 2))
    ax = rendered(F.plot_binarization(per_layer(values, np.arange(8) + 1, name="binarization")))
    ticks = ax.get_yticks()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    visible = [(v, lab) for v, lab in zip(ticks, labels) if ax.get_ylim()[0] <= v <= ax.get_ylim()[1]]
    assert len({lab for _, lab in visible}) == len(visible)  # no two ticks read the same
    for value, label in visible:  # every label reads back as its tick's value
        assert abs(float(label.replace("−", "-").rstrip("%")) / 100 - value) < 1e-9, (value, label)
    # and 7.5 % is written as such when it is a tick
    ax.set_yticks([0.075, 0.175])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["7.5%", "17.5%"]


def test_per_layer_curves_get_clearly_different_colours():
    values = np.outer(np.arange(1, 6), np.arange(1, 6)).astype(float)
    ax = F.plot_snr_per_layer(per_layer(values, np.arange(5) + 1, name="snr"))
    colours = [to_rgb(l.get_color()) for l in ax.get_lines() if l.get_label().startswith("layer_")]
    assert len(colours) == 5
    closest = min(np.linalg.norm(cielab(a) - cielab(b)) for a, b in itertools.combinations(colours, 2))
    assert closest > 20, closest  # CIE76 ΔE; the five "crest" teal shades were 15.7 apart


def test_the_fitting_label_stays_inside_the_axes():
    snr = xr.DataArray(np.geomspace(100, 0.5, 60), dims="step", coords={"step": np.arange(60) * 100 + 2}, name="snr")
    phases = PhaseTable("snr", [Phase("fitting", 2, 230, 1.0, 0.0, 3), Phase("diffusion", 302, 5902, 1.0, 0.0, 50)])
    ax = rendered(F.plot_snr(snr, phases=phases))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    ax.figure.draw(renderer)
    box = ax.get_window_extent(renderer)
    labels = {t.get_text(): t for t in ax.texts}
    assert {"fitting", "diffusion"} <= set(labels)
    for text in labels.values():
        extent = text.get_window_extent(renderer)
        assert box.x0 - 0.5 <= extent.x0 and extent.x1 <= box.x1 + 0.5, text.get_text()


def test_step_zero_phase_shading_starts_at_zero_on_a_symlog_axis():
    snr = xr.DataArray([9.0, 5.0, 2.0, 0.5], dims="step", coords={"step": [0, 10, 100, 1000]}, name="snr")
    ax = rendered(
        F.plot_snr(
            snr, phases=PhaseTable("snr", [Phase("fitting", 0, 100, 1.0, 0.0, 3), Phase("diffusion", 1000, 1000, 1.0, 0.0, 1)])
        )
    )
    assert ax.get_xscale() == "symlog"
    spans = list(ax.patches)
    assert spans and min(p.get_x() for p in spans) == 0.0


def test_raw_and_smoothed_snr_are_told_apart_by_a_legend():
    steps = np.arange(1, 41)
    raw = xr.DataArray(np.abs(np.random.default_rng(1).normal(2, 1, 40)) + 0.1, dims="step", coords={"step": steps}, name="snr")
    smooth = raw.rolling(step=5, min_periods=1).mean()
    ax = F.plot_snr(smooth, raw=raw, window=5)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["raw", "SNR, moving average of 5 captures"]
    faint, solid = [l for l in ax.get_lines() if l.get_label() in labels]
    np.testing.assert_array_equal(faint.get_ydata(), raw.values)
    assert faint.get_alpha() < 1 and solid.get_alpha() is None


def test_the_step_zero_rba_weight_spike_does_not_set_the_density_scale():
    rng = np.random.default_rng(2)
    first = rng.uniform(0.0, 0.001, size=(1, 500))  # one update after λ0 = 0 (Eq 28): all near 0
    later = rng.uniform(0.05, 0.6, size=(3, 500))
    da = xr.DataArray(np.vstack([first, later]), dims=("step", "sample"), coords={"step": [0, 100, 1000, 8000]})
    ax = rendered(plot_rba_weight_distribution(da))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("step 0 (peak ") and labels[0].endswith(", off scale)")
    assert labels[1:] == ["step 100", "step 1,000", "step 8,000"]
    assert len(ax.patches) + len(ax.get_lines()) >= 4  # the spike is still drawn, only off scale
    uniform_density = 1 / 0.55
    assert uniform_density < ax.get_ylim()[1] < 3 * uniform_density
    # without a spike the axis is seaborn's own
    plain = rendered(plot_rba_weight_distribution(da.isel(step=slice(1, None))))
    assert all("off scale" not in t.get_text() for t in plain.get_legend().get_texts())


def test_the_test_error_axis_says_what_the_scalar_is():
    steps = np.arange(1, 11) * 10
    error = xr.DataArray(np.linspace(0.9, 0.1, 10), dims="step", coords={"step": steps}, name="test_error",
                         attrs={"long_name": "top-1 classification error", "units": "%"})  # fmt: skip
    assert F.plot_test_error(error).get_ylabel() == "top-1 classification error [%]"
    srr = F.plot_srr(error.rename("srr_b") * 0 + 0.5, test_error=error)
    assert srr.figure.axes[-1].get_ylabel() == "top-1 classification error [%]"
    assert F.plot_test_error(error.assign_attrs(long_name="", units="")).get_ylabel() == "relative L2 test error"


def test_relative_l2_keeps_the_recorded_name_and_unit(make_store, tmp_path):
    import json

    from pinnlog.analyzer import metrics as M
    from pinnlog.analyzer import open_run

    store = make_store(tmp_path, n_steps=6, layers=(2, 3, 1), seed=1)
    meta_path = store / "scalars" / "test_error" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("attributes", {}).update(long_name="top-1 classification error", units="1")
    meta_path.write_text(json.dumps(meta))
    root = json.loads((store / "zarr.json").read_text())
    root.pop("consolidated_metadata", None)
    (store / "zarr.json").write_text(json.dumps(root))
    error = M.relative_l2(open_run(store))
    assert error.attrs["long_name"] == "top-1 classification error" and error.attrs["equation"] == "Eq. 7"
    assert F.plot_test_error(error).get_ylabel() == "top-1 classification error"


def test_the_compare_note_never_asks_the_vanilla_run_for_rba_weights():
    from pinnlog.analyzer.report.compose import RunResult, _rba_notes

    def run(label, rba):
        values = {"residual": object(), **({"rba_weight": object()} if rba else {})}
        return RunResult(label, f"{label}.zarr", {}, {}, values=values)

    (note,) = _rba_notes([run("vanilla", False), run("RBA", True)], single=False)
    assert note == "RBA weights drawn for RBA only: vanilla recorded none (a run trained without RBA has none to record)"
    assert "Recorder(" not in note
    (note,) = _rba_notes([run("vanilla", False)], single=True)
    assert "an RBA run records them" in note
    assert _rba_notes([run("RBA", True), run("RBA2", True)], single=False) == []


def test_a_recorded_description_labels_the_test_error_axis(tmp_path):
    torch = pytest.importorskip("torch")
    from pinnlog.analyzer import metrics as M
    from pinnlog.analyzer import open_run
    from pinnlog.recorder import Recorder, every

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 2)
    with Recorder(
        tmp_path / "cls.zarr", model, optimizer, batch_loss=lambda m, b: m(x[b::2]).pow(2).mean(), n_batches=2, schedule=every(2)
    ) as rec:
        rec.describe("test_error", long_name="top-1 classification error", units="1")
        for step in range(4):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
            rec.step(step, loss=1.0 / (step + 1), test_error=0.5 / (step + 1))
    error = M.relative_l2(open_run(tmp_path / "cls.zarr"))
    assert error.attrs["long_name"] == "top-1 classification error"
    assert F.plot_test_error(error).get_ylabel() == "top-1 classification error"


def test_compared_mutual_information_panels_show_the_same_bound():
    from pinnlog.analyzer.report.figures_compare import plot_layers_overlay

    steps = np.arange(1, 7) * 10
    a = per_layer(np.full((6, 2), 8.0), steps, n_samples=256, units="bit")
    b = per_layer(np.full((6, 2), 7.996), steps, n_samples=256, units="bit")
    fig = plot_layers_overlay({"vanilla": a, "RBA": b}, ylabel="I(X;T) [bits]", logy=False)
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0.0 and 8.0 <= ax.get_ylim()[1] <= 8.8
        assert any(l.get_label().startswith("_") and np.allclose(l.get_ydata(), 8.0) for l in ax.get_lines())
    assert [t.get_text() for t in fig.axes[0].texts if "saturated" in t.get_text()] == ["saturated at log₂ N = 8 bits (N = 256)"]
