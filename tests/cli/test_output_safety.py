"""Outputs never land inside a store, never go through a link, and appear whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pinnlog.analyzer.output import (
    Interrupted,
    OutputPathError,
    check_output_path,
    open_new,
    printable,
    staged_directory,
    staged_file,
)
from pinnlog.analyzer.report.html import esc


@pytest.fixture(scope="module")
def store(tmp_path_factory, make_store):
    return make_store(tmp_path_factory.mktemp("safety"), n_steps=10, layers=(2, 4, 1), seed=3, name="run.zarr")


@pytest.fixture(scope="module")
def previous_report(store, tmp_path_factory) -> Path:
    """``analyze_run(store, ..., smooth=1)``, drawn once (seconds): tests that need an earlier report in place
    copy it (read-only use); the tests of a fresh report still draw their own."""
    from pinnlog.analyzer.report import analyze_run

    out = tmp_path_factory.mktemp("previous") / "report"
    analyze_run(store, out, smooth=1)
    return out


def previous_report_at(previous_report: Path, out: Path) -> Path:
    """The earlier report at ``out``, as ``analyze_run(store, out, smooth=1)`` would have left it."""
    shutil.copytree(previous_report, out)
    return out


def tree_digest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``: equal digests, untouched tree."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("inside", ["", "scalars", "gradient_stats/new"])
def test_a_report_inside_a_store_is_refused_and_the_store_is_untouched(cli, store, inside):
    before = tree_digest(store)
    result = cli("analyze", store, "-o", store / inside if inside else store)
    assert result.exit_code == 2
    assert "Zarr store or group" in one_line_error(result)
    assert tree_digest(store) == before


def test_export_and_compare_refuse_a_store_too(cli, store, tmp_path):
    before = tree_digest(store)
    for args in (("compare", store, store, "-l", "a", "-l", "b", "-o", store / "x"), ("export", store, "-o", store / "c")):
        result = cli(*args)
        assert result.exit_code == 2, result.stderr
        assert "Zarr store or group" in one_line_error(result)
    assert tree_digest(store) == before


def test_a_symbolic_link_in_the_output_path_is_refused(cli, store, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    for out in (tmp_path / "link", tmp_path / "link" / "report"):
        result = cli("analyze", store, "-o", out)
        assert result.exit_code == 2
        assert "symbolic link" in one_line_error(result)
    assert list(real.iterdir()) == []


def test_open_new_never_follows_a_link(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "figure.png").symlink_to(target)
    with pytest.raises(OSError):
        open_new(tmp_path / "figure.png")
    assert target.read_text() == "keep"


def test_a_failing_report_leaves_the_previous_one_byte_for_byte(store, previous_report, tmp_path, monkeypatch):
    from pinnlog.analyzer.report import analyze_run, build

    out = previous_report_at(previous_report, tmp_path / "report")
    before = tree_digest(out)
    assert "report.html" in before

    def half_then_fail(runs, stage, progress):
        (stage / "snr.png").write_bytes(b"half a figure")
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(build, "draw_figures", half_then_fail)
    with pytest.raises(RuntimeError):
        analyze_run(store, out, smooth=1)
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder is left


def test_ctrl_c_while_drawing_keeps_the_previous_report_and_says_so(cli, store, previous_report, tmp_path, monkeypatch):
    from pinnlog.analyzer.report import build

    out = previous_report_at(previous_report, tmp_path / "report")
    before = tree_digest(out)

    def interrupted(runs, stage, progress):
        (stage / "snr.png").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "draw_figures", interrupted)
    result = cli("analyze", store, "-o", out)
    assert result.exit_code == 130
    assert result.stderr.strip() == f"interrupted; the previous {out} is unchanged"
    assert tree_digest(out) == before
    fresh = tmp_path / "fresh"
    result = cli("analyze", store, "-o", fresh)
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted; nothing written"
    assert not fresh.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_new_report_replaces_an_old_one_whole_but_keeps_foreign_files(store, previous_report, tmp_path):
    from pinnlog.analyzer.report import analyze_run

    out = previous_report_at(previous_report, tmp_path / "report")
    (out / "stale_figure.png").write_bytes(b"from an older version")
    analyze_run(store, out, smooth=1)
    assert not (out / "stale_figure.png").exists()  # a folder of ours is replaced whole
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    analyze_run(store, mine, smooth=1)
    assert (mine / "notes.txt").read_text() == "the user's own file"
    assert (mine / "report.html").is_file() and (mine / "summary.json").is_file()


def test_staged_file_replaces_or_keeps_the_target(tmp_path):
    target = tmp_path / "curves.nc"
    target.write_bytes(b"old")
    with pytest.raises(Interrupted, match=r"previous .* is unchanged"), staged_file(target) as staged:
        staged.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    with staged_file(target) as staged:
        staged.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.nc"]


def test_check_output_path_says_what_is_wrong(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_path(tmp_path / "a_file")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path, directory=False)
    assert check_output_path(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(OutputPathError, match="cannot write"), staged_directory(tmp_path / "a_file" / "below"):
        pass


def test_terminal_strings_lose_escape_sequences_and_control_characters():
    hostile = "run\x1b[2J\x1b]0;owned\x07\x1b]8;;http://x\x1b\\name\r\nnext\x00\x9b31m\u202egpj.exe"
    shown = printable(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\x00" not in shown and "\u202e" not in shown
    assert all(ch.isprintable() for ch in shown)
    assert shown.startswith("runname") and "next" in shown
    assert "\\x00" in shown and "\\u202e" in shown  # shown, not obeyed


def test_html_attributes_keep_newlines_and_controls_as_data():
    text = esc('a"b\nc\rd\te\x1bf\x00<g>')
    assert "\n" not in text and "\r" not in text and "\t" not in text and "\x1b" not in text and "\x00" not in text
    assert "&#10;" in text and "&#13;" in text and "&#9;" in text and "&quot;" in text and "&lt;g&gt;" in text


def test_info_and_verify_print_no_terminal_escape_from_the_store(cli, make_store, tmp_path):
    path = make_store(tmp_path, n_steps=6, layers=(2, 3, 1), seed=2, name="hostile.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["config"] = {"note": "\x1b]0;pwned\x07\x1b[31mred"}
    meta["attributes"]["model"] = "MLP\x1b[2J"
    (path / "zarr.json").write_text(json.dumps(meta))
    for command in ("info", "verify"):
        result = cli(command, path)
        assert result.exit_code in (0, 1), result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "red" in cli("info", path).stdout


def test_no_staging_folder_is_left_after_a_report(store, tmp_path):
    from pinnlog.analyzer.report import analyze_run

    analyze_run(store, tmp_path / "r", smooth=1)
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert os.stat(tmp_path / "r").st_mode & 0o755 == 0o755 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


SAMPLE = Path(__file__).resolve().parents[2] / "sample_logs" / "ac_rba.zarr"


@pytest.mark.parametrize("after", [2.0, 5.0])
def test_ctrl_c_in_a_real_process_says_one_line_and_leaves_no_half_report(tmp_path, after):
    import signal
    import subprocess
    import sys
    import time

    if not SAMPLE.is_dir():
        pytest.skip("sample_logs/ac_rba.zarr is not in this checkout")
    out = tmp_path / "report"
    script = "from pinnlog.analyzer.cli import main; main()"
    # a new session stands for the terminal: Ctrl-C reaches every process of the group, drawing workers too
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "analyze", str(SAMPLE), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it finished first: then the report is whole
        assert (out / "report.html").is_file()
        return
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted; nothing written"]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
