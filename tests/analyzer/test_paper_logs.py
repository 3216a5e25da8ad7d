"""``import_paper_logs`` and ``pinnlog import-paper-logs``: the authors' text logs as a format-1 store.

The mini fixture (``tests/data/paper_logs_mini``, written by its ``generate.py``) is checked against
the float64 truth it was printed from; the authors' Allen–Cahn logs (``reference_data``) against
their own whole-net columns, parsed here with the csv module.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pinnlog.analyzer import metrics, open_run
from pinnlog.analyzer.cli import main
from pinnlog.analyzer.paper_logs import PaperLogsError, import_paper_logs

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "paper_logs_mini"
CANDIDATES = [ROOT.parent / "shared" / "reference" / "paper_logs", ROOT / "shared" / "reference" / "paper_logs"]
PAPER_LOGS = next((p for p in CANDIDATES if (p / "allen_cahn" / "v" / "grad_stats2.txt").is_file()), None)
PAPER_NUMEL = [256, 16384, 16384, 16384, 16384, 16384, 128]  # [2] + [128] x 6 + [1], weights only


def whole_net_columns(path: Path) -> dict[int, tuple[float, float]]:
    """``{step: (Mean, Std)}`` of a whole-net log (the same on every row of a step); complete rows only."""
    out = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                out[int(row["Epoch"])] = (float(row["Mean"]), float(row["Std"]))
            except (TypeError, ValueError):  # a row cut short
                continue
    return out


def relative_gap(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b) / np.abs(b)


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    path = import_paper_logs(MINI, tmp_path_factory.mktemp("mini") / "mini.zarr")
    return open_run(path)


@pytest.fixture(scope="module")
def truth():
    return json.loads((MINI / "truth.json").read_text())


# -- the mini fixture -----------------------------------------------------------------------------------
def test_gradient_stats_are_the_truth_the_logs_were_printed_from(mini_run, truth):
    stats = mini_run["gradient_stats"].to_dataset().compute()
    np.testing.assert_array_equal(stats["step"].values, truth["steps"])
    for var in ("sum_mu2", "sum_sigma2", "sum_rms2", "sum_w2"):
        # the logs print float32 norms: 6e-8 relative per norm, 1.2e-7 squared, and a sum for rms
        np.testing.assert_allclose(stats[var].values, np.array(truth[var]), rtol=3e-7, err_msg=var)
    np.testing.assert_array_equal(stats["numel"].values, PAPER_NUMEL)
    np.testing.assert_array_equal(stats["layer"].values, np.arange(7))
    assert not stats["is_bias"].values.any()


def test_root_attributes_describe_the_paper_network_and_the_import(mini_run):
    attrs = mini_run.attrs
    assert attrs["pinnlog_format"] == 1 and attrs["status"] == "complete" and attrs["n_batches"] == 100
    layout = attrs["layout"]
    assert [t["name"] for t in layout] == [f"layers.layer_{i}.weight" for i in range(7)]
    assert [t["numel"] for t in layout] == PAPER_NUMEL
    assert [t["shape"][0] * t["shape"][1] for t in layout] == PAPER_NUMEL
    assert [t["offset"] for t in layout] == list(np.cumsum([0] + PAPER_NUMEL[:-1]))
    widths = [128] * 6 + [1]
    assert [(layer["name"], layer["width"]) for layer in attrs["layers"]] == [(f"layer_{i}", w) for i, w in enumerate(widths)]
    said = attrs["imported_from"]
    assert str(MINI) in said and "grad_stats2.txt (5 steps x 7 weight matrices)" in said
    assert "grad_rms.txt" in said and "over 2 steps 2..4 (the log stops early)" in said


def test_scalars_are_the_losses_file(mini_run, truth):
    scalars = mini_run["scalars"].to_dataset().compute()
    expected = np.array(truth["losses"])
    np.testing.assert_array_equal(scalars["step"].values, expected[:, 0].astype(int))
    np.testing.assert_allclose(scalars["test_error"].values, expected[:, 1], rtol=1e-9)  # printed with 10 decimals
    np.testing.assert_allclose(scalars["loss"].values, expected[:, 2], atol=1e-10)
    assert np.isnan(scalars["wall_time"].values).all()


def test_whole_net_snr_and_srr_b_match_the_whole_net_logs(mini_run):
    snr = metrics.snr(mini_run).compute()
    srr_b = metrics.srr_b(mini_run).compute()
    whole = whole_net_columns(MINI / "grad_stats.txt")
    rms = whole_net_columns(MINI / "grad_rms.txt")
    assert sorted(rms) == [2, 4, 6]  # whole-net columns repeat on every row: step 6's first rows hold them
    steps = snr["step"].values
    assert relative_gap(snr.values, [whole[s][0] / whole[s][1] for s in steps]).max() < 1e-6
    assert relative_gap(srr_b.sel(step=[2, 4, 6]).values, [rms[s][0] / rms[s][1] for s in (2, 4, 6)]).max() < 1e-6
    np.testing.assert_allclose(snr.values, srr_b.values / np.sqrt(1 - srr_b.values**2), rtol=1e-9)  # Eq 17


def test_a_per_layer_log_cut_short_keeps_its_complete_steps(tmp_path):
    src = tmp_path / "logs"
    shutil.copytree(MINI, src)
    lines = (src / "grad_stats2.txt").read_text().splitlines()
    (src / "grad_stats2.txt").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:17])  # step 500: 4 rows and a half
    run = open_run(import_paper_logs(src, tmp_path / "cut.zarr"))
    assert run["gradient_stats"]["step"].values.tolist() == [2, 4, 6, 400]
    assert "5 incomplete rows skipped" in run.attrs["imported_from"]


def test_whole_net_logs_that_disagree_are_reported(tmp_path):
    src = tmp_path / "logs"
    shutil.copytree(MINI, src)
    lines = (src / "grad_stats.txt").read_text().splitlines()
    head, rows = lines[0], [line.split(",") for line in lines[1:]]
    for row in rows:
        row[2] = repr(float(row[2]) * 1.001)  # whole-net ||mu|| 0.1% off
    (src / "grad_stats.txt").write_text("\n".join([head] + [",".join(r) for r in rows]) + "\n")
    with pytest.warns(RuntimeWarning, match="disagree with the per-layer rows by up to 1.0e-03 relative"):
        run = open_run(import_paper_logs(src, tmp_path / "off.zarr"))
    assert "grad_stats.txt: whole-net columns agree with the per-layer rows to 1.0e-03 relative" in run.attrs["imported_from"]


def test_widths_give_numel_and_must_match_the_logs(tmp_path):
    widths = (2, 3, 3, 3, 3, 3, 3, 1)
    run = open_run(import_paper_logs(MINI, tmp_path / "w.zarr", widths=widths, n_batches=8))
    assert run["gradient_stats"]["numel"].values.tolist() == [6, 9, 9, 9, 9, 9, 3]
    assert run.attrs["n_batches"] == 8
    with pytest.raises(PaperLogsError, match=r"has 7 weight matrices but widths=\[2, 8, 1\] describe 2"):
        import_paper_logs(MINI, tmp_path / "x.zarr", widths=(2, 8, 1))


def test_user_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(PaperLogsError, match="no such directory"):
        import_paper_logs(tmp_path / "nowhere", tmp_path / "a.zarr")
    with pytest.raises(PaperLogsError, match=r"has no grad_stats2\.txt"):
        import_paper_logs(tmp_path, tmp_path / "a.zarr")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "grad_stats2.txt").write_text("step,name,a,b\n1,x,2,3\n")
    with pytest.raises(PaperLogsError, match="expected the header Epoch,Layer,Mean,Std,L2, found 'step,name,a,b'"):
        import_paper_logs(bad, tmp_path / "a.zarr")
    out = import_paper_logs(MINI, tmp_path / "once.zarr")
    with pytest.raises(PaperLogsError, match="already exists; pass overwrite=True"):
        import_paper_logs(MINI, out)
    assert import_paper_logs(MINI, out, overwrite=True) == out


def test_progress_reports_every_row_written(tmp_path):
    calls = []
    import_paper_logs(MINI, tmp_path / "p.zarr", progress=lambda what, done, total: calls.append((what, done, total)))
    assert calls[-1][1:] == (5, 5)


# -- the command line -------------------------------------------------------------------------------------
def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_a_store_that_opens(capsys, tmp_path, truth):
    code, out, _ = run_cli(capsys, "import-paper-logs", MINI, "-o", tmp_path / "cli.zarr")
    assert code == 0 and f"wrote {tmp_path / 'cli.zarr'}" in out
    stats = open_run(tmp_path / "cli.zarr")["gradient_stats"].to_dataset()
    np.testing.assert_allclose(stats["sum_mu2"].values, np.array(truth["sum_mu2"]), rtol=3e-7)


def test_cli_refuses_to_overwrite_without_the_flag(capsys, tmp_path):
    assert run_cli(capsys, "import-paper-logs", MINI, "-o", tmp_path / "o.zarr")[0] == 0
    code, _, err = run_cli(capsys, "import-paper-logs", MINI, "-o", tmp_path / "o.zarr")
    assert code == 2 and "already exists; pass --overwrite" in err and "Traceback" not in err
    assert err.strip().count("\n") == 0
    assert run_cli(capsys, "import-paper-logs", MINI, "-o", tmp_path / "o.zarr", "--overwrite")[0] == 0
    code, _, err = run_cli(capsys, "import-paper-logs", tmp_path / "missing", "-o", tmp_path / "m.zarr")
    assert code == 2 and "does not exist" in err


# -- the authors' Allen–Cahn logs -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ac")
    return {name: open_run(import_paper_logs(PAPER_LOGS / "allen_cahn" / name, tmp / f"{name}.zarr")) for name in ("v", "r")}


@pytest.mark.reference_data
@pytest.mark.skipif(PAPER_LOGS is None, reason="the authors' logs (../shared/reference/paper_logs) are not here")
@pytest.mark.parametrize("name", ["v", "r"])
def test_paper_logs_whole_net_snr_and_eq17(paper_runs, name):
    folder = PAPER_LOGS / "allen_cahn" / name
    run = paper_runs[name]
    snr = metrics.snr(run).compute()
    srr_b = metrics.srr_b(run).compute()
    steps = snr["step"].values
    assert steps[0] == 2 and steps[-1] == 300_000 and steps.size == 150 + 2997

    whole = whole_net_columns(folder / "grad_stats.txt")
    assert sorted(whole) == steps.tolist()
    assert relative_gap(snr.values, [whole[s][0] / whole[s][1] for s in steps]).max() < 1e-5

    rms = whole_net_columns(folder / "grad_rms.txt")  # r/grad_rms.txt stops at 146,100
    common = np.array(sorted(rms))
    assert common.size >= 1000 and set(common) <= set(steps)
    phi_file = np.array([rms[s][0] / rms[s][1] for s in common])
    assert relative_gap(srr_b.sel(step=common).values, phi_file).max() < 1e-5
    # Eq 17 from the file's SRR_B: a relative error e of phi becomes e / (1 - phi^2) in the SNR;
    # phi printed as exactly 1 (float32 norms at SNR ~ 1e6, RBA's first steps) has no finite SNR
    resolved = phi_file < 1
    assert resolved.sum() >= common.size - 10
    phi = phi_file[resolved]
    gap = relative_gap(phi / np.sqrt(1 - phi**2), snr.sel(step=common).values[resolved])
    assert np.all(gap <= 1e-5 / (1 - phi**2))
