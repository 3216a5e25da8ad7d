"""``import-paper-logs``: widths from --widths, messages in the command line's own terms, whole stores only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "paper_logs_mini"


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_widths_set_the_layout_of_the_store(cli, tmp_path):
    from pinnlog.analyzer import open_run

    result = cli("import-paper-logs", DATA, "-o", tmp_path / "w.zarr", "--widths", "2,5,6,7,8,9,10,1")
    assert result.exit_code == 0, result.stderr
    layout = open_run(tmp_path / "w.zarr").attrs["layout"]
    assert [tuple(t["shape"]) for t in layout] == [(5, 2), (6, 5), (7, 6), (8, 7), (9, 8), (10, 9), (1, 10)]
    assert [t["numel"] for t in layout] == [10, 30, 42, 56, 72, 90, 10]


def test_messages_speak_the_command_line_not_the_python_api(cli, tmp_path):
    message = one_line(cli("import-paper-logs", DATA, "-o", tmp_path / "w.zarr", "--widths", "2,3,1"))
    assert "7 weight matrices" in message and "--widths" in message and "widths=" not in message
    (tmp_path / "exists.zarr").mkdir()
    message = one_line(cli("import-paper-logs", DATA, "-o", tmp_path / "exists.zarr"))
    assert "--overwrite" in message and "overwrite=True" not in message
    assert "IN,HIDDEN,...,OUT" in one_line(cli("import-paper-logs", DATA, "-o", tmp_path / "x.zarr", "--widths", "2,,1"))


def test_the_python_api_speaks_python(tmp_path):
    from pinnlog.analyzer.paper_logs import PaperLogsError, import_paper_logs

    with pytest.raises(PaperLogsError) as info:
        import_paper_logs(DATA, tmp_path / "w.zarr", widths=(2, 3, 1))
    assert "widths=" in str(info.value) and "--" not in str(info.value)
    (tmp_path / "exists.zarr").mkdir()
    with pytest.raises(PaperLogsError, match="overwrite=True") as info:
        import_paper_logs(DATA, tmp_path / "exists.zarr")
    assert "--" not in str(info.value)


def test_an_interrupted_import_leaves_the_previous_store(cli, tmp_path, monkeypatch):
    out = tmp_path / "a.zarr"
    assert cli("import-paper-logs", DATA, "-o", out).exit_code == 0
    before = json.loads((out / "zarr.json").read_text())
    import pinnlog.analyzer.store.write as store_module  # import_paper_logs writes through RunWriter

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.RunWriter, "append", interrupted)
    result = cli("import-paper-logs", DATA, "-o", out, "--overwrite")
    assert result.exit_code == 130
    assert result.stderr.splitlines() == [f"interrupted; the previous {out} is unchanged"]
    assert json.loads((out / "zarr.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr"]
