"""The hostile corpus against every command (issue 13): no traceback, a documented exit status, one line.

``test_hostile_stores.py`` runs ``verify`` and ``analyze`` on every case; here ``info``, ``verify --repair``
(on a copy), ``compare`` (the case against the healthy store), ``watch --once`` and ``import-paper-logs``
run on every case, ``import-paper-logs`` on hostile paper-log folders, and ``analyze``/``export``/
``verify --repair`` into a full disk, through a link loop and a dangling link. Each runs in this process
through the real entry point (``pinnlog.analyzer.cli.main``) under click's CliRunner.
"""

from __future__ import annotations

import json

import pytest
from hostile_corpus import CASE_NAMES

from benchmarks.reliability.corpus_commands import (
    DOCUMENTED_EXITS,
    LOG_CASES,
    OUTPUT_CASES,
    build_log_cases,
    enospc_writes,
    log_outcomes,
    output_outcomes,
    store_command,
)

pytestmark = pytest.mark.timeout(300)
COMMANDS = ("info", "verify --repair", "compare", "watch --once", "import-paper-logs")


def assert_good(outcome) -> None:
    where = f"{outcome.case} / {outcome.command}: exit {outcome.exit_code}\n{outcome.stderr[-3000:]}"
    assert not outcome.traceback, where
    assert outcome.exit_code in DOCUMENTED_EXITS, where
    assert outcome.one_line, where


@pytest.fixture(scope="module")
def log_cases(tmp_path_factory):
    return build_log_cases(tmp_path_factory.mktemp("paper_logs"))


#: compare and watch --once draw a whole report of a store that opens (seconds each): on every case with
#: -m slow; by default on these (each once gave a traceback, or is a control), and on every refused case.
QUICK = {"healthy", "steps_not_increasing", "group_json_garbage", "diverged_values", "bitflip_chunk", "storage_transformers"}
DRAWING = ("compare", "watch --once")


def _matrix():
    for name in CASE_NAMES:
        for command in COMMANDS:
            slow = command in DRAWING and name not in QUICK and name not in REFUSED_AT_OPEN
            yield pytest.param(name, command, marks=[pytest.mark.slow] if slow else [], id=f"{name}-{command}")


#: Cases open_run refuses: compare and watch stop at once on them (cheap).
REFUSED_AT_OPEN = {
    "not_a_directory", "plain_directory", "zarr_v2_pickle", "root_json_garbage", "root_json_deep_nesting",
    "format_unknown", "format_wrong_type", "format_missing", "n_committed_string", "n_committed_negative",
    "n_committed_beyond_capacity", "layout_mismatch", "huge_string_attrs", "wrong_dims_swapped", "wrong_dim_names",
    "no_dimension_names", "wrong_dtype", "string_variable", "unknown_codec", "pickle_codec", "pickle_in_shard",
    "group_json_garbage", "symlink_metadata_outside", "symlink_group_outside", "fifo_metadata", "empty_run",
    "fill_zero_deleted_chunk", "big_endian_codec", "inverted_is_bias", "json_200k_deep", "config_900_deep",
    "huge_static_shape", "storage_transformers", "bad_chunk_separator",
}  # fmt: skip


def test_the_cheap_cases_are_the_ones_open_run_refuses(hostile):
    assert {name for name, case in hostile[0].items() if case.open_refused} == REFUSED_AT_OPEN


@pytest.mark.parametrize(("name", "command"), list(_matrix()))
def test_every_command_on_every_hostile_store(hostile, tmp_path, name, command):
    cases = hostile[0]
    outcome = store_command(command, name, cases[name].path, cases["healthy"].path, tmp_path)
    assert_good(outcome)
    if command == "info" and cases[name].verify_exit == 2:
        # what verify says is not a pinnlog store (or is over the metadata caps), info does not describe either
        assert outcome.exit_code == 2, outcome
    if command == "import-paper-logs":  # a store folder holds no grad_stats2.txt
        assert outcome.exit_code == 2 and "grad_stats2.txt" in outcome.stderr, outcome
    if command in ("compare", "watch --once") and outcome.exit_code == 0:
        assert (tmp_path / command.split()[0] / "summary.json").is_file()


def test_watch_once_stops_after_one_report_of_a_run_still_recording(hostile, cli, tmp_path):
    # a store left open by a kill says "recording": without --once watch would wait for it forever
    from corpus_tools import write_healthy_store

    store = write_healthy_store(tmp_path / "open.zarr", close=False)
    result = cli("watch", store, "--once", "-o", tmp_path / "report", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["runs"][0]["steps"]["last"] == 110  # the last committed step of write_healthy_store (12 steps x 10)


@pytest.mark.parametrize("name", LOG_CASES)
def test_import_paper_logs_on_hostile_logs(log_cases, tmp_path, name):
    # what was imported is then read by info and verify (analyze: the campaign; drawing: as any store)
    found = log_outcomes(name, log_cases[name], tmp_path, commands=("info", "verify"))
    for outcome in found:
        assert_good(outcome)
    imported = (tmp_path / "imported.zarr").exists()
    if name in ("logs_healthy", "logs_crlf", "logs_pipe", "logs_link_dev_zero"):
        # a pipe or a device where losses.txt should be is not read (it would block or never end): skipped
        assert imported and found[0].exit_code == 0, found[0]
    if name in ("logs_binary", "logs_empty", "logs_header_only", "logs_link_loop", "logs_is_a_folder"):
        assert found[0].exit_code == 2 and not imported, found[0]


def test_outputs_on_a_full_disk_a_link_loop_and_a_dangling_link(hostile, tmp_path, monkeypatch):
    found = output_outcomes(hostile[0]["healthy"].path, tmp_path, full_disk=lambda work: enospc_disk(work))
    assert [o.case for o in found] == list(OUTPUT_CASES)
    for outcome in found:
        assert_good(outcome)
        assert outcome.exit_code == 2, outcome
    assert "No space left" in found[0].stderr and "No space left" in found[2].stderr
    assert "symbolic link" in found[3].stderr and "symbolic link" in found[4].stderr
    assert not (tmp_path / "nowhere").exists()  # the dangling link's target was not created


def enospc_disk(work):
    """The full disk of the campaign without mounting anything: every write pinnlog makes there fails."""
    import contextlib

    from corpus_tools import write_healthy_store

    @contextlib.contextmanager
    def disk():
        mount = work / "full_disk"
        mount.mkdir()
        write_healthy_store(mount / "open.zarr", close=False)
        with enospc_writes(mount):
            yield mount

    return disk()


def test_a_diverged_run_is_drawn_clipped_not_a_crash(analyzed):
    # test error 3e265 and a loss up to 1e308: matplotlib's log tick locator overflowed on them (issue 13)
    result, out = analyzed("diverged_values")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    loss = next(f for f in summary["figures"] if f["name"] == "loss")
    assert any("drawn at the edge" in note for note in loss["notes"]), loss
    assert (out / "loss.png").stat().st_size > 0
    assert summary["runs"][0]["final"]["test_error"]["value"] == 3e265  # the numbers are kept as recorded
