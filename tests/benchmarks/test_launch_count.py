"""benchmarks/launch_count.py: its counter counts what launches kernels, and the engines' launches scale as designed."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
from benchmarks import device_check, launch_count
from benchmarks.launch_count import StepLaunches, launches, run_ratio
from benchmarks.paper_problem import AllenCahnProblem, make_run
from pinnlog.recorder import every
from pinnlog.recorder.captures import build_layout, flat_gradient
from pinnlog.recorder.engines import _loop_rows, vectorised_rows


def test_views_and_allocations_launch_nothing_and_each_computing_operator_once():
    a, b = torch.rand(4, 3), torch.rand(4, 3)
    assert launches(lambda: (a.view(12), a.t(), a[1:], a.unsqueeze(0), a.expand(2, 4, 3), torch.empty(5))).total == 0
    counted = launches(lambda: ((a + b) * b).sum())
    assert counted.total == 3 and dict(counted.ops) == {"add": 1, "mul": 1, "sum": 1}
    assert launches(lambda: a.t().contiguous()).total == 1  # a copy: one kernel


def _engine_launches(k: int) -> dict[str, int]:
    problem = AllenCahnProblem(n_batches=k, batch_size=8, n_ic=8)
    model, _ = make_run()
    layout = build_layout(model)
    return {
        "loop": launches(lambda: _loop_rows(model, layout, problem.residual_loss, 0, k)).total,
        "vectorised": launches(lambda: vectorised_rows(model, layout, problem.residual_losses, 0, k)).total,
        "one": launches(lambda: flat_gradient(problem.residual_loss(model, 0), layout.params, "b0")).total,
    }


def test_the_loop_launches_one_batch_gradient_per_batch_and_the_vectorised_pass_as_many_for_any_k():
    four, eight = _engine_launches(4), _engine_launches(8)
    assert eight["loop"] - four["loop"] == 4 * four["one"]
    assert eight["vectorised"] == four["vectorised"] < 2 * four["one"]


def test_run_ratio_adds_each_step_s_launches_as_the_schedule_and_the_self_checks_fall():
    counts = StepLaunches(plain=100, capture=130, checked=400, no_capture=2)
    ratio, n = run_ratio(counts, every(100), 1000, check_every=4)
    # captures at 0, 100, ..., 900: the 1st and the 5th and 9th (every 4th after the first) are checked
    checked, plain_captures = 3, 7
    expected = 1 + (checked * 400 + plain_captures * 130 + (1000 - 10) * 2) / (1000 * 100)
    assert n == 10 and ratio == pytest.approx(expected, rel=1e-12)
    ratio_once, _ = run_ratio(counts, every(100), 1000, check_every=None)
    assert ratio_once == pytest.approx(1 + (400 + 9 * 130 + 990 * 2) / 1e5, rel=1e-12)


def test_launch_count_quick_prints_each_count_over_the_plain_step(capsys):
    found = launch_count.main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^ {4}(\S.*?)\s+(\d+)\s+[\d.]+$", out, re.M))
    assert {name: int(n) for name, n in rows.items()} == found
    plain = found["plain training step"]
    for name, n in found.items():
        assert re.search(rf"{re.escape(name)}\s+{n}\s+{n / plain:.2f}$", out, re.M)
    # at K = 8 the loop launches 8 batch gradients; the vectorised capture fewer than two plain steps
    assert (
        found["capture, loop engine"]
        > 8 * found["one batch gradient (residual loss)"]
        > found["capture, vectorised, all K at once"]
    )
    assert len(re.findall(r"captures: 1\.\d{4}\s+\(target <= ", out)) == 2
    assert re.search(r"the writer thread takes -?\d+\.\d ms per capture", out)
    # what benchmarks/device_check.py's summary repeats of this output: the table, the ratios, the writer's share
    repeated = "\n".join(device_check.key_lines("launches", out.splitlines()))
    assert all(f"{name} " in repeated for name in found)
    assert re.search(r"every100 +\d+ steps, +\d+ captures: 1\.\d{4}", repeated) and "the writer thread takes" in repeated
