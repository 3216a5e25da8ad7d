"""Issue 13: every finding of the hostile-input pass, kept as a regression test.

Each test damages a healthy store (written by the real ``RunWriter``) the way the finding did and asserts
the property that failed: damage is detected by ``verify`` (exit 1) and refused by ``open_run``/``analyze``
(``CorruptStoreError``, exit 1), healthy stores raise no alarm, the lease keeps a second writer, an
overwrite and a repair off a live store.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from corpus_tools import LAYOUT, first_chunk, write_healthy_store

from pinnlog.analyzer.errors import CorruptStoreError, RecorderError, WriterError
from pinnlog.analyzer.store import open_run, repair_run, verify_run
from pinnlog.analyzer.store.checks import raw_sum_tolerance, tensor_sums
from pinnlog.analyzer.store.format import CHUNK_MAX_BYTES, METADATA_MAX_BYTES
from pinnlog.analyzer.store.guards import SafeLocalStore
from pinnlog.analyzer.store.lease import LEASE_NAME, STALE_S, StoreLockedError
from pinnlog.analyzer.store.write import RunWriter

SAMPLES = Path(__file__).parents[2] / "sample_logs"


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return write_healthy_store(tmp_path_factory.mktemp("h") / "run.zarr")


def copy(healthy: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run.zarr"
    shutil.copytree(healthy, out)
    return out


def damaged(path: Path) -> list[str]:
    report = verify_run(path)
    assert report.exit_code == 1, str(report)
    return [f"{f.where} {f.check}" for f in report.findings if f.level == "damaged"]


def without_manifest(path: Path) -> None:
    """The store as a killed-then-repaired run leaves it: no manifest, no ``committed`` list."""
    (path / ".pinnlog-digests.json").unlink()
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"]["committed"]
    meta.pop("consolidated_metadata", None)
    (path / "zarr.json").write_text(json.dumps(meta))


def raw_edit(path: Path, array: str, fn) -> None:
    """Rewrite every chunk file of ``array`` through plain zarr (valid codecs and checksums, new content)."""
    arr = zarr.open_array(zarr.storage.LocalStore(path / array), mode="r+")
    arr[...] = fn(arr[...])


# -- finding 4: silent wrong results -------------------------------------------------------------------------
def test_healthy_store_carries_checksums_and_a_manifest(healthy):
    meta = json.loads((healthy / "gradient_stats" / "sum_w2" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]][-1] == "crc32c"
    manifest = json.loads((healthy / ".pinnlog-digests.json").read_text())["chunks"]
    files = {str(p.relative_to(healthy)) for p in healthy.rglob("*") if p.is_file() and "/c/" in str(p.relative_to(healthy))}
    assert set(manifest) == files
    assert verify_run(healthy).exit_code == 0


@pytest.mark.parametrize("array", ["gradient_stats/sum_w2", "gradient_stats/sum_m_hat2", "scalars/test_error"])
def test_every_bit_flip_in_a_chunk_is_detected_and_refused(healthy, tmp_path, array):
    path = copy(healthy, tmp_path)
    chunk = first_chunk(path, array)
    original = chunk.read_bytes()
    rng = np.random.default_rng(0)
    for bit in rng.choice(len(original) * 8, size=8, replace=False):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        chunk.write_bytes(bytes(flipped))
        assert any(array in d for d in damaged(path))
        with pytest.raises(CorruptStoreError, match="pinnlog verify"):
            _ = open_run(path)[array.split("/")[0]][array.split("/")[1]].values
    chunk.write_bytes(original)
    assert verify_run(path).exit_code == 0


def test_swapped_chunk_files_are_detected(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    a, b = first_chunk(path, "gradient_stats/sum_mu2"), first_chunk(path, "gradient_stats/sum_sigma2")
    tmp = tmp_path / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    assert any("sum_mu2" in d for d in damaged(path))
    with pytest.raises(CorruptStoreError):
        _ = open_run(path)["gradient_stats"]["sum_mu2"].values


def test_deleted_chunk_with_fill_value_zero_is_detected(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    meta_path = path / "scalars" / "test_error" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["fill_value"] = 0.0
    meta_path.write_text(json.dumps(meta))
    first_chunk(path, "scalars/test_error").unlink()
    found = damaged(path)
    assert any("fill value" in d for d in found) and any("manifest" in d for d in found)
    with pytest.raises(CorruptStoreError):
        open_run(path)


def test_big_endian_bytes_codec_is_refused(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    meta_path = path / "gradient_stats" / "sum_w2" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"][0]["configuration"]["endian"] = "big"
    meta_path.write_text(json.dumps(meta))
    assert any("sum_w2 codecs" in d for d in damaged(path))
    with pytest.raises(CorruptStoreError, match="endian"):
        open_run(path)


@pytest.mark.parametrize("var,fn", [("is_bias", np.logical_not), ("layer", lambda x: x[::-1].copy())])
def test_static_arrays_must_match_the_layout(healthy, tmp_path, var, fn):
    path = copy(healthy, tmp_path)
    without_manifest(path)  # the layout check alone must catch it
    raw_edit(path, f"gradient_stats/{var}", fn)
    assert f"gradient_stats/{var} layout" in damaged(path)
    with pytest.raises(CorruptStoreError, match="layout"):
        open_run(path)


def test_sum_w2_is_checked_against_weight_snapshots(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    without_manifest(path)
    raw_edit(path, "gradient_stats/sum_w2", lambda x: x * 1.001)
    assert "gradient_stats/sum_w2 weights" in damaged(path)


def test_a_store_without_checksums_opens_with_one_note(tmp_path):
    # a shipped sample recorded before format 1.2 (the Allen-Cahn pair was re-recorded with checksums)
    old = [
        p for p in sorted(SAMPLES.glob("*.zarr")) if "checksums" not in json.loads((p / "zarr.json").read_text())["attributes"]
    ]
    if not old:
        pytest.skip("no sample store without checksums in this checkout")
    store = old[0]
    report = verify_run(store)
    notes = [f for f in report.findings if f.check == "checksum"]
    assert report.exit_code == 0 and len(notes) == 1 and notes[0].level == "warning"
    assert open_run(store)["gradient_stats"].sizes["step"] > 0


# -- finding 5: false alarms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ac_vanilla.zarr", "ac_rba.zarr", "helmholtz_vanilla.zarr", "helmholtz_rba.zarr"])
def test_shipped_sample_stores_verify_healthy(name):
    store = SAMPLES / name
    if not store.exists():
        pytest.skip("sample_logs not in this checkout")
    report = verify_run(store)
    assert report.exit_code == 0, str(report)
    assert any(f.check == "raw consistency" and f.level == "ok" for f in report.findings)


def test_raw_tolerance_covers_float32_rounding_of_a_shared_gradient_at_high_snr():
    """Rows stored as fl32(g_b + s) with |s| >> sigma (SNR ~1e9): the recomputed sums stay inside the bound,
    which is 8u sqrt(1 + SNR) relative to sigma², so a 10 % change of sum_sigma2 is still caught."""
    rng = np.random.default_rng(1)
    k, p = 16, 4096
    g = (rng.normal(size=(k, p)) * 1e-3).astype(np.float32)
    s = rng.normal(size=p) * 30.0  # shared gradient, far larger than the batch spread
    layout = [{"offset": 0, "numel": p}]
    x = g.astype(np.float64)
    mu = x.mean(axis=0) + s
    exact_mu2 = np.array([mu @ mu])
    exact_sigma2 = np.array([((x - x.mean(axis=0)) ** 2).sum() / k])
    rows = (g + s.astype(np.float32)).astype(np.float32)  # what the recorder stores
    mu2, sigma2, rms2 = tensor_sums(rows, layout)
    assert exact_mu2 / exact_sigma2 > 1e5
    tol_mu2, tol_sigma2 = raw_sum_tolerance(np.maximum(mu2, exact_mu2), np.maximum(sigma2, exact_sigma2), rms2)
    assert abs(mu2 - exact_mu2) <= tol_mu2 and abs(sigma2 - exact_sigma2) <= tol_sigma2
    assert abs(sigma2 - exact_sigma2) > 1e-6 * exact_sigma2  # the old 1e-6 tolerance raised a false alarm here
    snr = exact_mu2 / exact_sigma2
    assert tol_sigma2 <= 8 * 2.0**-24 * np.sqrt(1 + snr) * exact_sigma2 * 1.01 + 1e-12 * rms2
    assert 0.1 * exact_sigma2 > tol_sigma2  # the bound still sees a real change


def test_a_deleted_group_the_store_recorded_is_damage(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    shutil.rmtree(path / "gradient_stats")
    assert "gradient_stats recorded" in damaged(path)


def test_an_emptied_group_is_damage(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    meta_path = path / "residuals" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["n_committed"] = 0
    meta_path.write_text(json.dumps(meta))
    assert "residuals recorded" in damaged(path)


# -- findings 2 and 3: the writer lease ------------------------------------------------------------------------
def _live_writer(path: Path) -> RunWriter:
    store = RunWriter(path, {"layout": LAYOUT, "n_batches": 4})
    store.append("scalars", {"step": [0], "wall_time": [0.0], "loss": [1.0]})
    return store


def test_second_writer_and_overwrite_refuse_a_live_store(tmp_path):
    path = tmp_path / "live.zarr"
    store = _live_writer(path)
    holder = json.loads((path / LEASE_NAME).read_text())
    with pytest.raises(StoreLockedError, match=f"PID {holder['pid']}"):
        RunWriter(path, {}, overwrite=True)
    with pytest.raises(RecorderError, match="already exists"):
        RunWriter(path, {})
    store.append("scalars", {"step": [1], "wall_time": [1.0], "loss": [0.5]})  # the first writer is untouched
    store.close()
    assert not (path / LEASE_NAME).exists()
    assert open_run(path)["scalars"].sizes["step"] == 2


def test_repair_refuses_a_live_store_and_the_writer_loses_no_row(tmp_path):
    path = tmp_path / "live.zarr"
    store = _live_writer(path)
    with pytest.raises(StoreLockedError, match="repair"):
        repair_run(path)
    for i in range(1, 400):
        store.append("scalars", {"step": [i], "wall_time": [float(i)], "loss": [1.0 / (i + 1)]})
    store.close()
    loss = open_run(path)["scalars"]["loss"].values
    assert loss.shape == (400,) and np.isfinite(loss).all()


def test_a_stale_lease_is_taken_over(tmp_path):
    path = tmp_path / "killed.zarr"
    store = _live_writer(path)
    store.abandon()  # as SIGKILL would leave it
    report = repair_run(path)
    assert any("interrupted" in a for a in report.actions)
    assert not (path / LEASE_NAME).exists()
    # a lease whose heartbeat is old is stale even if its PID runs (PID reuse, a hung process)
    old = {"pid": os.getppid(), "host": os.uname().nodename, "token": "x", "heartbeat": time.time() - 2 * STALE_S}
    (path / LEASE_NAME).write_text(json.dumps(old))
    RunWriter(path, {}, overwrite=True).close()


def test_writer_checks_the_real_capacity_and_never_commits_an_unwritten_row(tmp_path):
    path = tmp_path / "trimmed.zarr"
    store = _live_writer(path)
    # another process trims the array under the writer (what the old --repair did)
    other = zarr.open_array(zarr.storage.LocalStore(path / "scalars" / "loss"), mode="r+")
    other.resize((1,))
    with pytest.raises(WriterError, match="changed by another process"):
        store.append("scalars", {"step": [1], "wall_time": [1.0], "loss": [0.5]})
    assert json.loads((path / "scalars" / "zarr.json").read_text())["attributes"]["n_committed"] == 1
    store.abandon()


def test_overwrite_deletes_only_a_pinnlog_store(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RecorderError, match="not a pinnlog run store"):
        RunWriter(folder, {}, overwrite=True)
    assert (folder / "holiday.jpg").read_bytes() == b"\xff\xd8"
    link = tmp_path / "link.zarr"
    link.symlink_to(folder, target_is_directory=True)
    with pytest.raises(RecorderError, match="link"):
        RunWriter(link, {}, overwrite=True)
    assert (folder / "holiday.jpg").exists()


# -- finding 7: races and resources --------------------------------------------------------------------------
def test_a_chunk_swapped_for_a_fifo_does_not_hang(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    chunk = first_chunk(path, "scalars/loss")
    chunk.unlink()
    os.mkfifo(chunk)
    store = SafeLocalStore(path, read_only=True)
    with pytest.raises(CorruptStoreError, match="not a regular file"):
        store._read(str(chunk.relative_to(path)))
    assert verify_run(path).exit_code == 1


def test_oversized_and_deep_metadata_are_refused_before_parsing(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    meta_path = path / "scalars" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["junk"] = "x" * (METADATA_MAX_BYTES + 1)
    meta_path.write_text(json.dumps(meta))
    store = SafeLocalStore(path, read_only=True)
    with pytest.raises(CorruptStoreError, match="over pinnlog's limit"):
        store._read("scalars/zarr.json")
    meta["attributes"]["junk"] = json.loads("[" * 100 + "]" * 100)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CorruptStoreError, match="nests deeper"):
        store._read("scalars/zarr.json")


def test_compression_bomb_is_refused_before_decoding(healthy, tmp_path):
    import struct

    path = copy(healthy, tmp_path)
    without_manifest(path)  # with it, the CRC-32 refuses the chunk first
    chunk = first_chunk(path, "scalars/loss")
    data = bytearray(chunk.read_bytes())
    struct.pack_into("<I", data, 4, 2**31)  # the Blosc header now promises 2 GiB
    chunk.write_bytes(bytes(data))
    store = SafeLocalStore(path, read_only=True)
    with pytest.raises(CorruptStoreError, match="refused before decoding"):
        store._read(str(chunk.relative_to(path)))


def test_a_huge_static_shape_is_one_finding_not_a_memory_error(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    meta_path = path / "gradient_stats" / "numel" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [2**33]
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [2**33]
    meta_path.write_text(json.dumps(meta))
    assert CHUNK_MAX_BYTES < 2**33 * 8
    assert any("numel" in d for d in damaged(path))


def test_links_inside_the_store_are_refused(healthy, tmp_path):
    path = copy(healthy, tmp_path)
    chunk = first_chunk(path, "scalars/loss")
    moved = chunk.with_name("moved")
    chunk.rename(moved)
    chunk.symlink_to(moved)
    assert any("files" in d for d in damaged(path))
    loop = path / "scalars" / "loop"
    loop.symlink_to(loop)
    assert verify_run(path).exit_code == 1


# -- finding 8: one line, always, with the documented exit status ------------------------------------------------
def _one_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_analyze_of_a_damaged_chunk_exits_1_naming_verify(healthy, tmp_path, cli):
    path = copy(healthy, tmp_path)
    chunk = first_chunk(path, "gradient_stats/sum_mu2")
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 1
    chunk.write_bytes(bytes(data))
    result = cli("analyze", str(path), "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 1
    assert "pinnlog verify" in _one_line(result)


def test_repair_of_a_live_store_exits_2_naming_the_holder(tmp_path, cli):
    path = tmp_path / "live.zarr"
    store = _live_writer(path)
    result = cli("verify", "--repair", str(path))
    assert result.exit_code == 2 and f"PID {os.getpid()}" in _one_line(result)
    store.close()


def test_import_paper_logs_of_binary_input_exits_2(tmp_path, cli):
    src = tmp_path / "logs"
    src.mkdir()
    (src / "grad_stats2.txt").write_bytes(bytes(range(128, 256)) * 8)  # not UTF-8
    (src / "losses.txt").write_bytes(bytes(range(256)) * 8)
    result = cli("import-paper-logs", str(src), "-o", str(tmp_path / "out.zarr"))
    assert result.exit_code == 2 and "not a text" in _one_line(result)


def test_a_writer_whose_lease_was_taken_stops_and_does_not_close_the_store(tmp_path):
    path = tmp_path / "taken.zarr"
    store = _live_writer(path)
    lease = json.loads((path / LEASE_NAME).read_text())
    lease["token"] = "another process"
    (path / LEASE_NAME).write_text(json.dumps(lease))
    with pytest.raises(WriterError, match="took this store's lease"):
        store.append("scalars", {"step": [1], "wall_time": [1.0], "loss": [0.5]})
    with pytest.raises(WriterError, match="took this store's lease"):
        store.close()
    root = json.loads((path / "zarr.json").read_text())["attributes"]
    assert root["status"] == "recording" and "committed" not in root
