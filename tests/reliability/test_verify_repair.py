"""``verify_run`` finds exactly the damage that was done; ``repair_run`` closes an open store without losing a step."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from corpus_tools import drop_manifest, first_chunk, write_healthy_store

from pinnlog.analyzer.errors import CorruptStoreError, NotAStoreError
from pinnlog.analyzer.store import repair_run, verify_run
from pinnlog.analyzer.store.format import GROUPS

pytestmark = pytest.mark.timeout(120)


def committed_rows(path) -> dict[str, dict[str, np.ndarray]]:
    """Every committed row of every array, read with plain zarr (independent of the analyzer)."""
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    out = {}
    for name, group in root.groups():
        n = group.attrs["n_committed"]
        out[name] = {
            var: arr[:n] if arr.metadata.dimension_names[0] == GROUPS[name].axis else arr[...] for var, arr in group.arrays()
        }
    return out


def assert_same_rows(a, b) -> None:
    assert a.keys() == b.keys()
    for group in a:
        assert a[group].keys() == b[group].keys()
        for var in a[group]:
            np.testing.assert_array_equal(a[group][var], b[group][var], err_msg=f"{group}/{var}")


def levels(report, check: str) -> list[str]:
    return [f.level for f in report.findings if f.check == check]


def test_a_store_left_open_is_damaged_until_repair_trims_it_and_keeps_every_row(tmp_path):
    path = write_healthy_store(tmp_path / "open.zarr", close=False)
    leftover = first_chunk(path, "scalars/loss").with_name("0.1234abcd.partial")  # an interrupted atomic write
    leftover.write_bytes(b"half a chunk")
    before = committed_rows(path)
    capacity = zarr.open_array(path / "gradient_stats" / "sum_mu2", mode="r").shape[0]
    assert capacity > before["gradient_stats"]["step"].size  # pre-allocated beyond the commit point

    report = verify_run(path)
    assert report.exit_code == 1 and levels(report, "status") == ["damaged"]
    assert report.usable == report.committed == {g: v["step"].size for g, v in before.items()}

    repaired = repair_run(path)
    assert any("capacity" in a for a in repaired.actions) and not leftover.exists()
    assert repaired.after.exit_code == 0 and repaired.after.status == "interrupted"
    assert_same_rows(committed_rows(path), before)
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    for name, group in root.groups():
        for var, arr in group.arrays():
            if arr.metadata.dimension_names[0] == GROUPS[name].axis:
                assert arr.shape[0] == group.attrs["n_committed"], f"{name}/{var} not trimmed"
    # Consolidated metadata now exists and agrees: plain xarray sees the trimmed sizes.
    assert "consolidated_metadata" in json.loads((path / "zarr.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(path, engine="zarr")
    assert tree["gradient_stats"].sizes["capture"] == before["gradient_stats"]["step"].size


def test_a_node_whose_creation_a_kill_interrupted_is_harmless_and_repair_removes_it(tmp_path):
    # zarr makes the folder, writes zarr.<id>.partial, then renames it: a kill in between leaves this.
    path = write_healthy_store(tmp_path / "stub.zarr", close=False)
    (path / "residuals_stub").mkdir()
    shutil.rmtree(path / "activations")
    (path / "activations").mkdir()
    (path / "activations" / "zarr.5f3a.partial").write_bytes(b'{"attri')
    (path / "scalars" / "lr").mkdir()  # a scalar first given at this step, killed while being created
    before = committed_rows(path)
    report = verify_run(path)
    assert [(f.where, f.level) for f in report.findings if f.check == "metadata"] == [
        ("activations", "warning"),
        ("residuals_stub", "warning"),
        ("scalars/lr", "warning"),
    ]
    assert levels(report, "status") == ["damaged"] and sum(f.level == "damaged" for f in report.findings) == 1
    repaired = repair_run(path)
    assert not (path / "activations").exists() and not (path / "scalars" / "lr").exists()
    assert (path / "residuals_stub").is_dir()  # not a format-1 name: left to its owner
    assert repaired.after.exit_code == 0, str(repaired.after)
    after = committed_rows(path)
    assert_same_rows(after, before)


def test_repair_leaves_a_complete_store_as_it_is(tmp_path):
    path = write_healthy_store(tmp_path / "done.zarr")
    before = committed_rows(path)
    repaired = repair_run(path)
    assert not any("capacity" in a or "status" in a for a in repaired.actions)
    assert repaired.after.status == "complete" and repaired.after.exit_code == 0
    assert_same_rows(committed_rows(path), before)


def store_with_a_link_leaving_it(tmp_path):
    """An open store whose first ``scalars/loss`` chunk is a link to ``tmp_path / "secret"`` (holding "x")."""
    path = write_healthy_store(tmp_path / "linked.zarr", close=False)
    (tmp_path / "secret").write_text("x")
    chunk = first_chunk(path, "scalars/loss")
    chunk.unlink()
    chunk.symlink_to(tmp_path / "secret")
    return path


def test_repair_refuses_a_store_with_a_link_leaving_it(tmp_path):
    path = store_with_a_link_leaving_it(tmp_path)
    with pytest.raises(CorruptStoreError, match="links leaving the store"):
        repair_run(path)
    assert (tmp_path / "secret").read_text() == "x"


def test_repair_of_something_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAStoreError):
        repair_run(tmp_path / "plain")


def test_one_capture_whose_reductions_break_the_identity_is_the_only_unusable_row(tmp_path):
    path = drop_manifest(write_healthy_store(tmp_path / "r.zarr"))
    arr = zarr.open_array(path / "gradient_stats" / "sum_mu2", mode="r+")
    arr[5, 1] = arr[5, 1] * 2 + 1.0  # sum_rms2 no longer equals sum_mu2 + sum_sigma2 at capture 5
    report = verify_run(path)
    assert report.exit_code == 1
    assert report.usable["gradient_stats"] == report.committed["gradient_stats"] - 1
    assert [f.detail.split()[0] for f in report.findings if f.check == "reductions"] == ["1"]


def test_a_raw_snapshot_that_disagrees_with_the_reductions_is_named_by_its_step(tmp_path):
    path = drop_manifest(write_healthy_store(tmp_path / "r.zarr"))
    bg = zarr.open_array(path / "batch_gradients" / "batch_gradients", mode="r+")
    row = bg[2]
    row[0] += 0.5  # batch 0 of snapshot 2 shifts: its mean and spread, hence SNR, change
    bg[2] = row
    step = int(zarr.open_array(path / "batch_gradients" / "step", mode="r")[2])
    report = verify_run(path)
    (finding,) = [f for f in report.findings if f.check == "raw consistency"]
    assert finding.level == "damaged" and f"first at step {step}" in finding.detail
    assert report.usable["batch_gradients"] == report.committed["batch_gradients"] - 1


def test_snr_consistency_passes_on_a_healthy_store(tmp_path):
    report = verify_run(write_healthy_store(tmp_path / "ok.zarr"))
    (finding,) = [f for f in report.findings if f.check == "raw consistency"]
    assert finding.level == "ok" and finding.detail.startswith("4 snapshot(s) agree")


def test_only_decoding_finds_a_truncated_chunk(tmp_path):
    path = write_healthy_store(tmp_path / "t.zarr")
    chunk = first_chunk(path, "residuals/residual")
    chunk.write_bytes(chunk.read_bytes()[:10])
    assert verify_run(path, decode=False).exit_code == 0
    report = verify_run(path)
    assert report.exit_code == 1 and report.usable["residuals"] == 0
    assert [f.where for f in report.findings if f.check == "decode"] == ["residuals/residual"]


def test_a_missing_chunk_of_a_step_column_is_damage(tmp_path):
    path = write_healthy_store(tmp_path / "m.zarr")
    first_chunk(path, "weights/step").unlink()  # steps read as the fill value -1
    report = verify_run(path)
    assert report.exit_code == 1 and report.usable["weights"] == 0


def test_url_stores_are_verified_like_directories(tmp_path):
    pytest.importorskip("fsspec")
    url = f"file://{write_healthy_store(tmp_path / 'u.zarr')}"
    report = verify_run(url)
    assert report.exit_code == 0 and report.committed["scalars"] == 12


def test_a_file_url_gets_the_guards_of_a_path(tmp_path):
    """``file://`` names the local directory: open_run, verify and repair refuse a link leaving it, as for a path."""
    from pinnlog.analyzer import open_run

    url = store_with_a_link_leaving_it(tmp_path).absolute().as_uri()
    report = verify_run(url)
    assert report.exit_code == 1 and any(f.check == "files" and "link leaving the store" in f.detail for f in report.findings)
    with pytest.raises(CorruptStoreError, match="links leaving the store"):
        repair_run(url)
    with pytest.raises(CorruptStoreError, match="link"):
        _ = open_run(url)["scalars"]["loss"].values
    assert (tmp_path / "secret").read_text() == "x"


def test_cli_repair_then_verify(tmp_path, cli):
    path = write_healthy_store(tmp_path / "open.zarr", close=False)
    assert cli("verify", path).exit_code == 1
    result = cli("verify", "--repair", path)
    assert result.exit_code == 0, result.stdout
    assert "repaired: status 'recording' -> 'interrupted'" in result.stdout
    assert cli("verify", path).exit_code == 0


def test_safe_store_follows_no_link_inside_but_opens_a_linked_store_directory(tmp_path):
    path = write_healthy_store(tmp_path / "real.zarr")
    (tmp_path / "alias.zarr").symlink_to(path, target_is_directory=True)
    assert verify_run(tmp_path / "alias.zarr").exit_code == 0
    chunk = first_chunk(path, "scalars/loss")
    shutil.move(chunk, path / "scalars" / "loss" / "moved_chunk")
    os.symlink(path / "scalars" / "loss" / "moved_chunk", chunk)  # issue 13: no link is followed, even inside
    report = verify_run(tmp_path / "alias.zarr")
    assert report.exit_code == 1 and any("link inside the store" in f.detail for f in report.findings)
