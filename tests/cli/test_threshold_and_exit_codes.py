"""``-t/--threshold`` forms, and one exit-status table for every command (docs/cli.md)."""

from __future__ import annotations

import json
import os

import pytest

from pinnlog.analyzer.cli import parse_threshold


@pytest.mark.parametrize(("text", "value"), [("0.1", 0.1), ("0.05", 0.05), ("10%", 0.1), ("7.5%", 0.075), (" 1 % ", 0.01)])
def test_a_threshold_is_a_fraction_or_a_percentage(text, value):
    assert parse_threshold(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["10", "1", "0", "-0.1", "1.5", "100%", "0%", "150%", "abc", "%", "nan", "inf", "5%%"])
def test_anything_else_is_refused_naming_the_accepted_forms(cli, text, tmp_path, healthy):
    # one store for every text (read only; the refusal does not depend on the store's data)
    result = cli("analyze", healthy, "-t", text, "-o", tmp_path / "out")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "a fraction in (0, 1) such as 0.05, or a percentage such as 5%" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_percentage_reaches_the_report_as_a_fraction(cli, tmp_path, make_store):
    store = make_store(tmp_path, n_steps=6, layers=(2, 3, 1), seed=1)
    result = cli("analyze", store, "-t", "10%", "-t", "0.5", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["options"]["thresholds"] == pytest.approx([0.1, 0.5])


# -- exit status, command by command ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, make_store):
    return make_store(tmp_path_factory.mktemp("exit"), n_steps=8, layers=(2, 3, 1), seed=4, name="ok.zarr")


@pytest.fixture(scope="module")
def killed(tmp_path_factory, make_store):
    """A store a killed run left: status "recording" with its arrays at capacity (verify says damaged)."""
    return make_store(tmp_path_factory.mktemp("killed"), n_steps=8, layers=(2, 3, 1), seed=4, close=False, name="killed.zarr")


def test_info_exit_status(cli, healthy, tmp_path):
    assert cli("info", healthy).exit_code == 0
    assert cli("info", tmp_path / "missing.zarr").exit_code == 2
    assert cli("info").exit_code == 2


def test_analyze_compare_watch_export_exit_status(cli, healthy, tmp_path):
    assert cli("analyze", healthy, "-o", tmp_path / "a").exit_code == 0
    assert cli("analyze", tmp_path / "missing.zarr").exit_code == 2
    assert cli("analyze", healthy, "--smooth", "0").exit_code == 2
    assert cli("compare", healthy, healthy, "-o", tmp_path / "c").exit_code == 0
    assert cli("compare", healthy).exit_code == 2
    assert cli("compare", healthy, healthy, "-l", "one").exit_code == 2
    assert cli("watch", healthy, "-o", tmp_path / "w", "--every", "0.1").exit_code == 0  # a finished run: one report
    assert cli("watch", tmp_path / "missing.zarr").exit_code == 2
    assert cli("export", healthy, "--to", "csv", "-o", tmp_path / "e").exit_code == 0
    assert cli("export", healthy, "--to", "xlsx").exit_code == 2
    assert cli("export", tmp_path / "missing.zarr").exit_code == 2


def test_verify_exit_status(cli, healthy, killed, tmp_path):
    assert cli("verify", healthy).exit_code == 0
    assert cli("verify", killed).exit_code == 1
    assert cli("verify", tmp_path / "missing.zarr").exit_code == 2
    (tmp_path / "plain").mkdir()
    assert cli("verify", tmp_path / "plain").exit_code == 2


def test_import_paper_logs_exit_status(cli, tmp_path):
    assert cli("import-paper-logs", tmp_path / "nowhere", "-o", tmp_path / "x.zarr").exit_code == 2
    (tmp_path / "empty").mkdir()
    assert cli("import-paper-logs", tmp_path / "empty", "-o", tmp_path / "x.zarr").exit_code == 2


DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data", "paper_logs_mini")


@pytest.mark.parametrize(
    ("args", "module", "function"),
    [
        (("info", "{store}"), "pinnlog.analyzer.store.read", "describe_run"),
        (("analyze", "{store}", "-o", "{tmp}/r"), "pinnlog.analyzer.report", "analyze_run"),
        (("compare", "{store}", "{store}", "-o", "{tmp}/c"), "pinnlog.analyzer.report", "compare_runs"),
        (("watch", "{store}", "-o", "{tmp}/w"), "pinnlog.analyzer.watch", "watch_run"),
        (("verify", "{store}"), "pinnlog.analyzer.store", "verify_run"),
        (("verify", "--repair", "{store}"), "pinnlog.analyzer.store", "repair_run"),
        (("export", "{store}", "-o", "{tmp}/e"), "pinnlog.analyzer.export", "export_run"),
        (("import-paper-logs", DATA, "-o", "{tmp}/p.zarr"), "pinnlog.analyzer.paper_logs", "import_paper_logs"),
    ],
)
def test_every_command_exits_3_on_an_internal_error_and_130_on_ctrl_c(
    cli, healthy, tmp_path, monkeypatch, args, module, function
):
    import importlib

    args = [a.format(store=healthy, tmp=tmp_path) for a in args]
    target = importlib.import_module(module)

    def broken(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(target, function, broken)
    result = cli(*args)
    assert result.exit_code == 3, (args, result.stderr)
    assert "RuntimeError: a bug" in result.stderr and "internal error: this is a bug in pinnlog" in result.stderr

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, function, interrupted)
    result = cli(*args)
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["interrupted; nothing written"]
    assert os.listdir(tmp_path) == []


def _make_read_only(folder) -> list[str]:
    """Make every file and folder under ``folder`` read-only for this process; returns what to undo.

    Without root, ``chmod a-w`` does it; root ignores modes, so there the immutable attribute does
    (``chattr +i``; skipped where the file system or the capabilities do not allow it).
    """
    import shutil
    import subprocess

    paths = [str(p) for p in sorted(folder.rglob("*"), reverse=True)] + [str(folder)]
    if os.geteuid() != 0:
        for p in paths:
            os.chmod(p, os.stat(p).st_mode & ~0o222)
        return []
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a store read-only here")
    done = subprocess.run(["chattr", "+i", *paths], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["chattr", "-i", *paths], capture_output=True)
        pytest.skip(f"chattr +i is not allowed here ({done.stderr.strip()})")
    return paths


def _undo_read_only(folder, paths) -> None:
    import subprocess

    if paths:
        subprocess.run(["chattr", "-i", *paths], check=True)
    else:
        for p in [folder, *folder.rglob("*")]:
            os.chmod(p, os.stat(p).st_mode | 0o200)


def test_repair_of_a_read_only_store_changes_nothing_and_never_says_repaired(cli, make_store, tmp_path):
    import hashlib

    store = make_store(tmp_path, n_steps=8, layers=(2, 3, 1), seed=4, close=False, name="killed.zarr")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in store.rglob("*") if p.is_file()}
    undo = _make_read_only(store)
    try:
        result = cli("verify", "--repair", store)
    finally:
        _undo_read_only(store, undo)
    assert result.exit_code == 2
    assert "repaired" not in result.stdout.replace("nothing was repaired", "")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be written" in lines[0] and "nothing was repaired" in lines[0]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in store.rglob("*") if p.is_file()} == before
    assert cli("verify", "--repair", store).exit_code in (0, 1)  # writable again: the repair runs


def test_ctrl_c_during_watch_says_which_report_is_kept(cli, healthy, tmp_path, monkeypatch):
    import pinnlog.analyzer.watch as watch
    from pinnlog.analyzer.report import analyze_run

    out = tmp_path / "live"

    def one_refresh_then_ctrl_c(path, out_dir, *, on_refresh, **kwargs):
        report = analyze_run(path, out_dir, smooth=1)
        on_refresh(watch.Refresh("recording", {"scalars": 8}, report))
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "watch_run", one_refresh_then_ctrl_c)
    result = cli("watch", healthy, "-o", out, "--quiet")
    assert result.exit_code == 130
    assert result.stderr.splitlines() == [f"interrupted; {out} holds the report of the last refresh"]
    assert (out / "report.html").is_file()
