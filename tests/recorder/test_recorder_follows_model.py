"""Issue 15: the recorder follows a model that changes while it trains, and refuses mistakes at construction.

Each test reproduces one failure the issue reports (fine-tuning, replaced layers, head-only optimizers,
Transformer probes, sparse/lazy parameters, ...) and checks the stored numbers against an independent
``.backward()`` reference where there are numbers to check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from recorder_problems import reference_batch_gradients, reference_reductions

torch = pytest.importorskip("torch")
import itertools

from torch import nn

from pinnlog.analyzer import open_run
from pinnlog.analyzer.errors import PinnlogError, RecorderError
from pinnlog.analyzer.store.format import TENSOR_STATES
from pinnlog.analyzer.store.verify import verify_run
from pinnlog.recorder import Recorder, every

K = 4


def _data(seed=0, n=32, d=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, 1, generator=g)
    return x, y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))


def _batch_loss(x, y):
    n = x.shape[0] // K

    def loss(model, b):
        return ((model(x[b * n : (b + 1) * n]) - y[b * n : (b + 1) * n]) ** 2).mean()

    return loss


def _train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if "pinnlog" in str(w.message)]


def _names(run):
    return [t["name"] for t in run.attrs["layout"]]


def test_freezing_a_layer_mid_run_gives_nan_for_it_and_one_warning_and_training_goes_on(run_path):
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch_loss = _batch_loss(x, y)
    expected = {}

    def train():
        with Recorder(run_path, model, optimizer, batch_loss, K, schedule=every(5)) as rec:
            for step in range(20):
                if step == 7:
                    model[0].requires_grad_(False)  # fine-tuning: freeze the first layer
                if step == 15:
                    model[0].requires_grad_(True)
                _train_step(model, optimizer, x, y)
                if step == 10:
                    live = [p for p in model.parameters() if p.requires_grad]
                    twin = nn.Sequential(*list(model))  # same tensors; the reference differentiates all
                    grads = reference_batch_gradients(twin, batch_loss, K)
                    expected[10] = (grads, len(list(model.parameters())) - len(live))
                rec.step(step, loss=1.0)

    _, messages = _caught(train)
    frozen = [m for m in messages if "frozen" in m]
    assert len(frozen) == 1 and "0.weight" in frozen[0] and "0.bias" in frozen[0]
    run = open_run(run_path)
    stats = run["gradient_stats"]
    steps = stats["step"].values.tolist()
    assert steps == [0, 5, 10, 15]
    state = stats["tensor_state"].values
    assert (state[[0, 1, 3]] == TENSOR_STATES["trained"]).all()
    assert (state[2, :2] == TENSOR_STATES["frozen"]).all() and (state[2, 2:] == TENSOR_STATES["trained"]).all()
    mu2 = stats["sum_mu2"].values
    assert np.isnan(mu2[2, :2]).all() and np.isfinite(mu2[2, 2:]).all() and np.isfinite(mu2[[0, 1, 3]]).all()
    # the live tensors' sums equal the reference computed at the same weights
    grads, _ = expected[10]
    bounds = np.cumsum([0] + [p.numel() for p in model.parameters()])
    slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]
    ref = reference_reductions(grads, slices)
    np.testing.assert_allclose(mu2[2, 2:], ref["sum_mu2"][2:], rtol=1e-5)
    np.testing.assert_allclose(stats["sum_sigma2"].values[2, 2:], ref["sum_sigma2"][2:], rtol=1e-5)
    # frozen weights are still real weights
    assert np.isfinite(stats["sum_w2"].values).all()
    assert run.attrs["status"] == "complete"


def test_a_replaced_layer_is_never_recorded_from_the_old_tensor(run_path):
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)

    def train():
        nonlocal optimizer
        with Recorder(run_path, model, optimizer, _batch_loss(x, y), K, schedule=every(5)) as rec:
            for step in range(11):  # the last capture (step 10) sees the final weights
                if step == 7:
                    model[2] = nn.Linear(6, 5)  # a new layer and a new optimizer, mid-run
                    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
                    rec.optimizer = optimizer
                _train_step(model, optimizer, x, y)
                rec.step(step)

    _, messages = _caught(train)
    gone = [m for m in messages if "replaced or removed" in m]
    assert len(gone) == 1 and "2.weight" in gone[0] and "new Recorder" in gone[0]
    stats = open_run(run_path)["gradient_stats"]
    names = _names(open_run(run_path))
    replaced = [i for i, n in enumerate(names) if n.startswith("2.")]
    w2 = stats["sum_w2"].values
    assert np.isnan(w2[2, replaced]).all()  # the old tensor's values would be finite and stale
    assert (stats["tensor_state"].values[2, replaced] == TENSOR_STATES["gone"]).all()
    others = [i for i in range(len(names)) if i not in replaced]
    kept = [float((p.detach().double() ** 2).sum()) for n, p in model.named_parameters() if not n.startswith("2.")]
    np.testing.assert_allclose(w2[2, others], kept, rtol=1e-12)


def test_a_tensor_unfrozen_later_is_said_once_or_recorded_with_parameters_all(tmp_path):
    x, y = _data()
    for parameters in ("trainable", "all"):
        model = _mlp()
        model[0].requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
        path = tmp_path / f"{parameters}.zarr"
        batch_loss = _batch_loss(x, y)
        ref = {}

        def train(model=model, optimizer=optimizer, path=path, batch_loss=batch_loss, parameters=parameters, ref=ref):
            with Recorder(path, model, optimizer, batch_loss, K, schedule=every(4), parameters=parameters) as rec:
                for step in range(9):
                    if step == 3:
                        model[0].requires_grad_(True)  # gradual unfreezing
                    _train_step(model, optimizer, x, y)
                    if step == 8:
                        ref["grads"] = reference_batch_gradients(model, batch_loss, K)
                    rec.step(step)

        _, messages = _caught(train)
        run = open_run(path)
        if parameters == "trainable":
            assert _names(run) == ["2.weight", "2.bias", "4.weight", "4.bias"]
            new = [m for m in messages if "not recorded" in m]
            assert len(new) == 1 and "0.weight" in new[0] and "parameters='all'" in new[0]
        else:
            assert _names(run)[:2] == ["0.weight", "0.bias"]
            state = run["gradient_stats"]["tensor_state"].values
            assert (state[0, :2] == TENSOR_STATES["frozen"]).all() and (state[2] == TENSOR_STATES["trained"]).all()
            bounds = np.cumsum([0] + [p.numel() for p in model.parameters()])
            ref_sums = reference_reductions(ref["grads"], [slice(a, b) for a, b in itertools.pairwise(bounds)])
            np.testing.assert_allclose(run["gradient_stats"]["sum_mu2"].values[2], ref_sums["sum_mu2"], rtol=1e-5)


def test_head_only_optimizer_srr_c_and_snr_cover_what_the_optimizer_trains(run_path):
    from pinnlog.analyzer.metrics import snr, srr_c

    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.Adam(model[4].parameters(), lr=1e-2)  # fine-tune the head only
    batch_loss = _batch_loss(x, y)
    with Recorder(run_path, model, optimizer, batch_loss, K, schedule=every(3)) as rec:
        for step in range(7):
            _train_step(model, optimizer, x, y)
            rec.step(step)
    run = open_run(run_path)
    stats = run["gradient_stats"]
    assert (stats["tensor_state"].values[:, :4] == TENSOR_STATES["untrained"]).all()
    assert (stats["tensor_state"].values[:, 4:] == TENSOR_STATES["trained"]).all()
    ratio = srr_c(run)
    assert np.isfinite(ratio.values).all() and "optimizer" in ratio.attrs["tensors"]
    # SRR_C over the head = ||m_hat|| / ||sqrt(v_hat)+eps|| of the head's tensors, from the stored sums
    m2, d2 = stats["sum_m_hat2"].values[:, 4:].sum(1), stats["sum_adam_denom2"].values[:, 4:].sum(1)
    np.testing.assert_allclose(ratio.values, np.sqrt(m2) / np.sqrt(d2), rtol=1e-12)
    head = snr(run)
    everything = snr(run, trained_only=False)
    mu2, s2 = stats["sum_mu2"].values, stats["sum_sigma2"].values
    np.testing.assert_allclose(head.values, np.sqrt(mu2[:, [4]].sum(1) / s2[:, [4]].sum(1)), rtol=1e-12)
    np.testing.assert_allclose(everything.values, np.sqrt(mu2[:, [0, 2, 4]].sum(1) / s2[:, [0, 2, 4]].sum(1)), rtol=1e-12)
    assert head.attrs["tensors"] != everything.attrs["tensors"]


def test_transformer_encoder_default_probe_is_refused_at_construction(run_path):
    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), num_layers=2)
    model.eval()
    x = torch.randn(8, 5, 8)
    with pytest.raises(RecorderError, match="layers=") as info:
        Recorder(
            run_path, model, torch.optim.Adam(model.parameters()), lambda m, b: m(x[2 * b : 2 * b + 2]).pow(2).mean(), K, probe=x
        )
    assert "\n" not in str(info.value)


def _verify_ok(path):
    report = verify_run(path)
    assert report.healthy, [str(f) for f in report.problems()]


def _record_activations(path, model, batch_loss, probe, layer: str):
    """Three SGD steps recording the activations of ``layer`` on ``probe``; the store verified and opened."""
    with Recorder(
        path,
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        batch_loss,
        K,
        schedule=every(1),
        raw_schedule=every(2),
        probe=probe,
        layers=[layer],
    ) as rec:
        for step in range(3):
            rec.step(step)
    _verify_ok(path)
    return open_run(path)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_recurrent_activations_verify(tmp_path, cell):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cell(3, 5)  # sequence-first: (time, batch, features)
            self.head = nn.Linear(5, 1)

        def forward(self, x):
            return self.head(self.rnn(x)[0][-1])

    model = Net()
    x, y = torch.randn(6, 8, 3), torch.randn(8, 1)
    run = _record_activations(
        tmp_path / "rnn.zarr", model, lambda m, b: ((m(x[:, 2 * b : 2 * b + 2]) - y[2 * b : 2 * b + 2]) ** 2).mean(), x, "rnn"
    )
    acts = run["activations"]["layer_0"]
    assert acts.shape[1:] == (8, 6 * 5)  # 8 probe samples (the batch axis), time x hidden units
    # sample 3's activations are the RNN's outputs for sequence 3
    np.testing.assert_allclose(acts.values[0, 3], model.rnn(x)[0][:, 3].detach().numpy().ravel(), rtol=1e-6)
    layout = {t["name"]: t["is_bias"] for t in run.attrs["layout"]}
    assert layout["rnn.bias_ih_l0"] and layout["rnn.bias_hh_l0"] and not layout["rnn.weight_ih_l0"]


def test_conv_activations_verify(run_path):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 3, 3)
            self.head = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            return self.head(torch.relu(self.conv1(x)).flatten(1))

    model = Net()
    x, labels = torch.randn(8, 1, 6, 6), torch.randint(0, 2, (8,))
    run = _record_activations(
        run_path, model, lambda m, b: nn.functional.cross_entropy(m(x[2 * b : 2 * b + 2]), labels[2 * b : 2 * b + 2]), x, "conv1"
    )
    assert run["activations"]["layer_0"].shape[1:] == (8, 3 * 4 * 4)
    assert run.attrs["layers"][0]["width"] == 3 and run.attrs["layers"][0]["units"] == 48


def test_attention_in_proj_bias_is_a_bias_and_weight_norm_is_one_layer(run_path):
    from torch.nn.utils import parametrizations

    torch.manual_seed(0)
    model = nn.Sequential(
        parametrizations.weight_norm(nn.Linear(4, 4)), nn.Tanh(), parametrizations.spectral_norm(nn.Linear(4, 1))
    )
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    with Recorder(
        run_path,
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        lambda m, b: ((m(x[2 * b : 2 * b + 2]) - y[2 * b : 2 * b + 2]) ** 2).mean(),
        K,
    ) as rec:
        rec.step(0)
    run = open_run(run_path)
    assert [layer["module"] for layer in run.attrs["layers"]] == ["0", "2"]
    assert {t["name"]: t["is_bias"] for t in run.attrs["layout"]} == {
        "0.bias": True,
        "0.parametrizations.weight.original0": False,
        "0.parametrizations.weight.original1": False,
        "2.bias": True,
        "2.parametrizations.weight.original": False,
    }
    from pinnlog.recorder.captures import build_layout

    roles = {t["name"]: t["is_bias"] for t in build_layout(nn.MultiheadAttention(4, 2, add_bias_kv=True)).tensors}
    assert roles == {
        "in_proj_weight": False,
        "in_proj_bias": True,
        "bias_k": True,
        "bias_v": True,
        "out_proj.weight": False,
        "out_proj.bias": True,
    }


def test_sparse_embedding_is_recorded_exactly(run_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 3, sparse=True), nn.Flatten(), nn.Linear(6, 1))
    tokens, y = torch.randint(0, 10, (16, 2)), torch.randn(16, 1)

    def batch_loss(m, b):
        return ((m(tokens[4 * b : 4 * b + 4]) - y[4 * b : 4 * b + 4]) ** 2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(run_path, model, optimizer, batch_loss, K, schedule=every(1), raw_schedule=every(1)) as rec:
        rec.step(0)
    grads = np.stack(
        [
            np.concatenate(
                [g.to_dense().numpy().ravel() for g in torch.autograd.grad(batch_loss(model, b), list(model.parameters()))]
            )
            for b in range(K)
        ]
    ).astype(np.float64)
    run = open_run(run_path)
    np.testing.assert_allclose(run["batch_gradients"]["batch_gradients"].values[0], grads, rtol=1e-6)
    bounds = np.cumsum([0] + [p.numel() for p in model.parameters()])
    ref = reference_reductions(grads, [slice(a, b) for a, b in itertools.pairwise(bounds)])
    np.testing.assert_allclose(run["gradient_stats"]["sum_sigma2"].values[0], ref["sum_sigma2"], rtol=1e-5)


def _one_line_error(run_path, match, **kwargs):
    with pytest.raises(PinnlogError, match=match) as info:
        kwargs.setdefault("model", _mlp())
        kwargs.setdefault("optimizer", torch.optim.SGD(kwargs["model"].parameters(), lr=0.1))
        kwargs.setdefault("batch_loss", _batch_loss(*_data()))
        Recorder(run_path, n_batches=K, **kwargs)
    assert "\n" not in str(info.value)


def test_construction_refuses_lazy_parameters_and_wrong_signatures(run_path):
    lazy = nn.Sequential(nn.LazyLinear(4), nn.Tanh(), nn.Linear(4, 1))
    _one_line_error(run_path, "forward pass", model=lazy, optimizer=torch.optim.SGD(lazy.parameters(), lr=0.1))
    _one_line_error(run_path, r"batch_loss\(model, b\)", batch_loss=lambda model: model.weight.sum())
    _one_line_error(run_path, r"shared_loss\(model\)", shared_loss=lambda model, b: 0)
    _one_line_error(run_path, "not a schedule expression", schedule="every 10")


def test_schedule_strings_are_parsed(run_path):
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(run_path, model, optimizer, _batch_loss(x, y), K, schedule="every(10)", raw_schedule="[5]") as rec:
        for step in range(21):
            rec.step(step)
    run = open_run(run_path)
    assert run["gradient_stats"]["step"].values.tolist() == [0, 5, 10, 20]
    assert run.attrs["schedule"] == "every(10)"


def test_inference_mode_and_backward_inside_batch_loss_are_one_line_errors(tmp_path):
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(tmp_path / "a.zarr", model, optimizer, _batch_loss(x, y), K)
    with torch.inference_mode(), pytest.raises(RecorderError, match="inference_mode") as info:
        rec.step(0)
    assert "\n" not in str(info.value)
    rec.close("interrupted")

    def backward_loss(model, b):
        loss = _batch_loss(x, y)(model, b)
        loss.backward()
        return loss

    rec = Recorder(tmp_path / "b.zarr", model, optimizer, backward_loss, K)
    with pytest.raises(RecorderError, match=r"\.backward\(\)") as info:
        rec.step(0)
    assert "\n" not in str(info.value)
    rec.close("interrupted")

    def stepping_loss(model, b):
        if b == 0:
            optimizer.step()  # with .grad set by the training loop: the weights move under the capture
        return _batch_loss(x, y)(model, b)

    _train_step(model, optimizer, x, y)
    rec = Recorder(tmp_path / "c.zarr", model, optimizer, stepping_loss, K)
    with pytest.raises(RecorderError, match=r"optimizer\.step\(\)") as info:
        rec.step(0)
    assert "\n" not in str(info.value)
    rec.close("interrupted")


def test_float64_models_raw_step_sums_are_float64_exact(run_path):
    """At SNR ~ 1e4 float32 rows lose sigma^2 (the issue measured 7e-4 off); Welford in float64 keeps 1e-9."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64) + 1e-4 * torch.randn(64, 1, dtype=torch.float64)

    def batch_loss(m, b):
        return ((m(x[16 * b : 16 * b + 16]) - y[16 * b : 16 * b + 16]) ** 2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(run_path, model, optimizer, batch_loss, K, schedule=every(1), raw_schedule=[0]) as rec:
        rec.step(0)
    grads = reference_batch_gradients(model, batch_loss, K)
    ref = reference_reductions(grads, [slice(0, 3), slice(3, 4)])
    stats = open_run(run_path)["gradient_stats"]
    np.testing.assert_allclose(stats["sum_sigma2"].values[0], ref["sum_sigma2"], rtol=1e-9)
    np.testing.assert_allclose(stats["sum_mu2"].values[0], ref["sum_mu2"], rtol=1e-9)


def test_analyze_and_info_on_a_head_only_run_with_param_groups(tmp_path):
    """`pinnlog analyze` gave "srr_c": null for a head-only Adam run; `pinnlog info` showed group 0 only."""
    import json

    from typer.testing import CliRunner

    from pinnlog.analyzer.cli import app

    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.Adam([{"params": model[2].parameters(), "lr": 1e-3}, {"params": model[4].parameters(), "lr": 7e-3}])
    path = tmp_path / "head.zarr"
    batch_loss = _batch_loss(x, y)
    with Recorder(
        path, model, optimizer, batch_loss, K, schedule=every(2), shared_loss=lambda m: 0.01 * m[4].weight.square().sum()
    ) as rec:
        for step in range(40):
            rec.step(step, loss=_train_step(model, optimizer, x, y).detach())
    runner = CliRunner()
    shown = runner.invoke(app, ["info", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "param group 1" in shown.output and "0.007" in shown.output and "shared_loss" in shown.output
    out = tmp_path / "report"
    result = runner.invoke(app, ["analyze", str(path), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["runs"][0]
    stats = open_run(path)["gradient_stats"]
    m2, d2 = stats["sum_m_hat2"].values[-1, 2:].sum(), stats["sum_adam_denom2"].values[-1, 2:].sum()
    assert summary["final"]["srr_c"]["value"] == pytest.approx(np.sqrt(m2 / d2), rel=1e-9)
    assert summary["metadata"]["gradient_tensors"] == "tensors the optimizer trains"


@pytest.mark.parametrize("told", [False, True])
def test_a_new_optimizer_never_gives_stale_adam_statistics(tmp_path, told):
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    path = tmp_path / "run.zarr"

    def train():
        nonlocal optimizer
        with Recorder(path, model, optimizer, _batch_loss(x, y), K, schedule=every(4)) as rec:
            for step in range(9):
                if step == 5:  # a fresh optimizer for the second half (e.g. after unfreezing)
                    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                    if told:
                        rec.optimizer = optimizer
                _train_step(model, optimizer, x, y)
                rec.step(step)

    _, messages = _caught(train)
    stats = open_run(path)["gradient_stats"]
    m_hat2 = stats["sum_m_hat2"].values
    assert np.isfinite(m_hat2[:2]).all()
    stale = [m for m in messages if "rec.optimizer = new_optimizer" in m]
    if told:
        assert not stale
        # the new optimizer's moments at step 8 (its t = 4), bias-corrected with its own betas
        expected = []
        for p in model.parameters():
            state = optimizer.state[p]
            t = float(state["step"])
            m_hat = state["exp_avg"].double() / (1 - 0.9**t)
            expected.append(float((m_hat**2).sum()))
        np.testing.assert_allclose(m_hat2[2], expected, rtol=1e-12)
    else:
        assert len(stale) == 1 and np.isnan(m_hat2[2]).all()


@pytest.mark.parametrize("state", ["python-attribute", "user-generator", "registered-buffer"])
def test_what_a_capture_cannot_put_back_is_what_the_docs_list(tmp_path, state):
    """docs/recording.md: Python attributes and a user torch.Generator are not restored; buffers are."""
    x, y = _data()

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp()
            self.generator = torch.Generator().manual_seed(5)
            self.calls = 0
            self.register_buffer("seen", torch.zeros(()))

        def forward(self, inputs):
            if state == "python-attribute":
                self.calls += 1
                shift = 1e-3 * self.calls
            elif state == "user-generator":
                shift = 1e-3 * torch.rand((), generator=self.generator)
            else:
                self.seen += 1
                shift = 1e-3 * self.seen
            return self.net(inputs) + shift

    def run(path):
        torch.manual_seed(0)
        model = Counting()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        rec = Recorder(path, model, optimizer, _batch_loss(x, y), K, schedule=every(2)) if path else None
        for step in range(5):
            _train_step(model, optimizer, x, y)
            if rec is not None:
                rec.step(step)
        if rec is not None:
            rec.close()
        return [p.detach().clone() for p in model.parameters()]

    recorded, plain = run(tmp_path / "run.zarr"), run(None)
    same = all(torch.equal(a, b) for a, b in zip(recorded, plain))
    assert same == (state == "registered-buffer")


def test_a_store_with_frozen_and_replaced_tensors_verifies(run_path):
    """NaN for frozen and replaced tensors is by design: `pinnlog verify` finds the raw rows and sums consistent."""
    x, y = _data()
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def train():
        with Recorder(run_path, model, optimizer, _batch_loss(x, y), K, schedule=every(2), raw_schedule=every(4)) as rec:
            for step in range(12):
                if step == 3:
                    model[0].requires_grad_(False)
                if step == 7:
                    model[4] = nn.Linear(5, 1)
                _train_step(model, optimizer, x, y)
                rec.step(step)

    _caught(train)
    _verify_ok(run_path)
    raw = open_run(run_path)["batch_gradients"]["batch_gradients"].values
    assert np.isnan(raw[1:, :, : 3 * 6 + 6]).all() and np.isfinite(raw[0]).all()  # frozen from step 3: NaN rows
