"""Generate the hostile-store corpus of the reliability campaign (issue 9).

Each case is a directory (or file) that a user might be mailed: a healthy format-1 store with one thing
broken, or something that is not a store at all. ``build_corpus(out_dir, marker)`` writes every case and
returns ``{name: HostileCase}``; the tests open, verify and analyse each one and check that pinnlog gives a
one-line error or a report, never a traceback, a hang, or code execution. Run it as a script to keep the
corpus on disk::

    python tests/reliability/hostile_corpus.py /tmp/hostile

The healthy base store (``corpus_tools.write_healthy_store``) is written with the real commit protocol
(``RunWriter``) from random batch gradients, so its reductions and its raw snapshots agree exactly (the
SNR consistency check must pass).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).parent))
from corpus_tools import (
    IMG,
    LAYERS,
    LAYOUT,
    SCRIPT,
    batch_reductions,
    drop_manifest,
    edit_node,
    evil_pickle,
    first_chunk,
    set_group_attr,
    set_root_attr,
    shard_of,
    write_healthy_store,
)

from pinnlog.analyzer.store.write import RunWriter

__all__ = ["CASE_NAMES", "HostileCase", "build_corpus"]

CASE_NAMES = (
    "healthy",
    "not_a_directory",
    "plain_directory",
    "zarr_v2_pickle",
    "root_json_garbage",
    "root_json_deep_nesting",
    "format_unknown",
    "format_wrong_type",
    "format_missing",
    "status_missing",
    "status_wrong_type",
    "n_committed_string",
    "n_committed_negative",
    "n_committed_beyond_capacity",
    "layout_wrong_type",
    "n_batches_wrong_type",
    "layout_mismatch",
    "huge_string_attrs",
    "html_in_names",
    "wrong_dims_swapped",
    "wrong_dim_names",
    "no_dimension_names",
    "wrong_dtype",
    "string_variable",
    "truncated_chunk",
    "bitflip_chunk",
    "unknown_codec",
    "pickle_codec",
    "pickle_in_shard",
    "group_json_garbage",
    "symlink_chunk_outside",
    "symlink_metadata_outside",
    "symlink_group_outside",
    "symlink_dev_zero",
    "fifo_chunk",
    "fifo_metadata",
    "nan_everywhere",
    "inf_everywhere",
    "zero_variance",
    "one_batch",
    "one_step",
    "empty_run",
    "steps_not_increasing",
    "unknown_group",
    # issue 13
    "checksum_bitflip",
    "swapped_chunks",
    "fill_zero_deleted_chunk",
    "big_endian_codec",
    "inverted_is_bias",
    "deleted_recorded_group",
    "json_200k_deep",
    "config_900_deep",
    "symlink_loop_chunk",
    "compression_bomb",
    "huge_static_shape",
    "storage_transformers",
    "bad_chunk_separator",
    "diverged_values",
)


@dataclass(frozen=True)
class HostileCase:
    """One entry of the corpus.

    ``open_refused``: True if ``open_run`` must raise a PinnlogError, False if it must open.
    ``verify_exit``: the exit code ``pinnlog verify`` must give (0 healthy, 1 damaged, 2 not a store).
    ``blame``: text that ``pinnlog verify`` must print for a damaged store (where the damage is).
    ``figure_affected``: reading the data of a figure fails, so ``pinnlog analyze`` must mark it.
    """

    name: str
    path: Path
    what: str
    open_refused: bool
    verify_exit: int
    blame: str = ""
    figure_affected: bool = False


# -- the cases -------------------------------------------------------------------------------------------
def build_corpus(out_dir: Path, marker: Path) -> dict[str, HostileCase]:
    """Write every hostile case under ``out_dir``; ``marker`` is the file a code-execution payload would create."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = write_healthy_store(out_dir / "_base.zarr")
    outside = out_dir / "_outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("a file outside the store that a symlink must not leak\n")
    shutil.copytree(base / "scalars", outside / "scalars_copy")
    cases: dict[str, HostileCase] = {}

    def case(name, what, open_refused, verify_exit, blame="", figure_affected=False):
        def deco(build):
            path = out_dir / f"{name}.zarr"
            if path.exists() or path.is_symlink():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            build(path)
            cases[name] = HostileCase(name, path, what, open_refused, verify_exit, blame, figure_affected)
            return build

        return deco

    def copy(path, keep_manifest=False):
        """The base store; without its chunk manifest unless asked (cases that edit arrays through plain
        zarr exercise the other checks, the manifest would refuse any such edit first)."""
        shutil.copytree(base, path, symlinks=True)
        if not keep_manifest:
            drop_manifest(path)

    def copy_with_chunk_replaced(path, array, make):
        """The base store with the first chunk file of ``array`` removed and ``make(chunk_path)`` put in its place."""
        copy(path)
        chunk = first_chunk(path, array)
        chunk.unlink()
        make(chunk)

    @case("healthy", "the untouched base store (control)", False, 0)
    def _(p):
        copy(p, keep_manifest=True)

    # -- not a store ----------------------------------------------------------------------------------
    @case("not_a_directory", "a plain file named like a store", True, 2)
    def _(p):
        p.write_bytes(b"\x89HDF\r\n\x1a\n not a zarr store")

    @case("plain_directory", "a directory without zarr.json", True, 2)
    def _(p):
        p.mkdir()
        (p / "notes.txt").write_text("hello")

    @case("zarr_v2_pickle", "a Zarr v2 store with an object array whose pickle filter runs code", True, 2)
    def _(p):
        p.mkdir()
        (p / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        (p / ".zattrs").write_text(json.dumps({"pinnlog_format": 1}))
        arr = p / "evil"
        arr.mkdir()
        (arr / ".zarray").write_text(
            json.dumps(
                {
                    "zarr_format": 2,
                    "shape": [1],
                    "chunks": [1],
                    "dtype": "|O",
                    "compressor": None,
                    "fill_value": None,
                    "filters": [{"id": "pickle", "protocol": 2}],
                    "order": "C",
                }
            )
        )
        (arr / "0").write_bytes(evil_pickle(marker))

    @case("root_json_garbage", "the root zarr.json is not JSON", True, 2)
    def _(p):
        copy(p)
        (p / "zarr.json").write_bytes(b"\x00\xff{{{ not json")

    @case("root_json_deep_nesting", "root attributes nested 100,000 lists deep (RecursionError bait)", True, 2)
    def _(p):
        copy(p)
        doc = (p / "zarr.json").read_text()
        (p / "zarr.json").write_text(
            doc.replace('"pinnlog_format": 1', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "pinnlog_format": 1', 1)
        )

    @case("format_unknown", "pinnlog_format = 99", True, 2)
    def _(p):
        copy(p)
        set_root_attr(p, "pinnlog_format", 99)

    @case("format_wrong_type", 'pinnlog_format = "1" (a string)', True, 2)
    def _(p):
        copy(p)
        set_root_attr(p, "pinnlog_format", "1")

    @case("format_missing", "no pinnlog_format attribute", True, 2)
    def _(p):
        copy(p)
        set_root_attr(p, "pinnlog_format", delete=True)

    # -- attributes --------------------------------------------------------------------------------------
    @case("status_missing", "no status attribute", False, 1, "no 'status'")
    def _(p):
        copy(p)
        set_root_attr(p, "status", delete=True)

    @case("status_wrong_type", "status = 42", False, 1, "status 42")
    def _(p):
        copy(p)
        set_root_attr(p, "status", 42)

    @case("n_committed_string", 'gradient_stats n_committed = "5"', True, 1, "n_committed='5'")
    def _(p):
        copy(p)
        set_group_attr(p, "gradient_stats", "n_committed", "5")

    @case("n_committed_negative", "residuals n_committed = -3", True, 1, "n_committed=-3")
    def _(p):
        copy(p)
        set_group_attr(p, "residuals", "n_committed", -3)

    @case("n_committed_beyond_capacity", "weights n_committed = 1,000,000 (arrays hold 4 rows)", True, 1, "n_committed=1000000")
    def _(p):
        copy(p)
        set_group_attr(p, "weights", "n_committed", 1_000_000)

    @case("layout_wrong_type", 'layout = "hello" (must be a list of tensors)', False, 1, "layout 'hello'")
    def _(p):
        copy(p)
        set_root_attr(p, "layout", "hello")

    @case("n_batches_wrong_type", 'n_batches = "many"', False, 1, "n_batches 'many'")
    def _(p):
        copy(p)
        set_root_attr(p, "n_batches", "many")

    @case("layout_mismatch", "layout declares 20 parameters, the raw arrays hold 13", True, 1, "the root attributes say 20")
    def _(p):
        copy(p)
        layout = json.loads(json.dumps(LAYOUT))
        layout[-1]["shape"], layout[-1]["numel"] = [8], 8
        set_root_attr(p, "layout", layout)

    @case("huge_string_attrs", "model and config hold 10 MB strings: over the 4 MiB metadata cap (issue 13)", True, 2)
    def _(p):
        copy(p)
        set_root_attr(p, "model", "M" * 10_000_000)
        set_root_attr(p, "config", {"note": "C" * 10_000_000})

    @case("html_in_names", "<script> and <img onerror> in attrs, layer names and a variable name", False, 0)
    def _(p):
        copy(p)
        set_root_attr(p, "model", SCRIPT)
        set_root_attr(p, "config", {SCRIPT: SCRIPT, "pde": IMG})
        set_root_attr(p, "schedule", SCRIPT)
        layers = json.loads(json.dumps(LAYERS))
        layers[1]["module"] = SCRIPT
        set_root_attr(p, "layers", layers)
        # A user scalar whose name is markup (a name cannot hold '/', so no closing tag here).
        shutil.copytree(p / "scalars" / "loss", p / "scalars" / IMG)

    # -- arrays ------------------------------------------------------------------------------------------
    @case(
        "wrong_dims_swapped", "gradient_stats/sum_mu2 declares its dims as (tensor, capture)", True, 1, "gradient_stats/sum_mu2"
    )
    def _(p):
        copy(p)
        edit_node(p, "gradient_stats/sum_mu2", lambda d: d.__setitem__("dimension_names", ["tensor", "capture"]))

    @case("wrong_dim_names", "gradient_stats/sum_sigma2 declares dims (capture, banana)", True, 1, "banana")
    def _(p):
        copy(p)
        edit_node(p, "gradient_stats/sum_sigma2", lambda d: d.__setitem__("dimension_names", ["capture", "banana"]))

    @case("no_dimension_names", "weights/weights has no dimension_names", True, 1, "weights/weights")
    def _(p):
        copy(p)
        edit_node(p, "weights/weights", lambda d: d.pop("dimension_names"))

    @case("wrong_dtype", "gradient_stats/sum_mu2 stored as int16", True, 1, "int16")
    def _(p):
        copy(p)
        g = zarr.open_group(p, mode="r+")
        old = g["gradient_stats/sum_mu2"]
        data = (old[...] * 100).astype(np.int16)
        g["gradient_stats"].create_array("sum_mu2", data=data, dimension_names=("capture", "tensor"), overwrite=True)

    @case("string_variable", "a scalars variable of dtype string (vlen-utf8)", True, 1, "scalars/note")
    def _(p):
        copy(p)
        g = zarr.open_group(p / "scalars", mode="r+")
        n = g.attrs["n_committed"]
        note = g.create_array("note", shape=(n,), dtype=str, dimension_names=("step",))
        note[...] = np.array([SCRIPT] * n, dtype=object)

    @case("truncated_chunk", "a gradient_stats chunk file cut to half its length", False, 1, "gradient_stats/sum_mu2", True)
    def _(p):
        copy(p)
        chunk = first_chunk(p, "gradient_stats/sum_mu2")
        data = chunk.read_bytes()
        chunk.write_bytes(data[: len(data) // 2])

    @case(
        "bitflip_chunk",
        "bits flipped inside a batch_gradients chunk and a gradient_stats chunk",
        False,
        1,
        "checksum",  # its crc32c fails (a store without checksums broke the identity check)
    )
    def _(p):
        copy(p)
        for array in ("batch_gradients/batch_gradients", "gradient_stats/sum_sigma2"):
            chunk = first_chunk(p, array)
            data = bytearray(chunk.read_bytes())
            for pos in range(len(data) // 2, len(data) // 2 + 4):
                data[pos] ^= 0x5A
            chunk.write_bytes(bytes(data))

    @case("unknown_codec", "scalars/loss compressed with a codec named evil.codec", True, 1, "evil.codec")
    def _(p):
        copy(p)
        edit_node(p, "scalars/loss", lambda d: d["codecs"].append({"name": "evil.codec", "configuration": {}}))

    @case("pickle_codec", "scalars/loss decoded by numcodecs.pickle, chunk = a code-running pickle", True, 1, "numcodecs.pickle")
    def _(p):
        copy(p)
        edit_node(
            p, "scalars/loss", lambda d: d.__setitem__("codecs", [{"name": "numcodecs.pickle", "configuration": {"protocol": 2}}])
        )
        first_chunk(p, "scalars/loss").write_bytes(evil_pickle(marker))

    @case("pickle_in_shard", "a pickle codec hidden inside sharding_indexed", True, 1, "numcodecs.pickle")
    def _(p):
        copy(p)
        inner = {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [8192],
                "codecs": [{"name": "numcodecs.pickle", "configuration": {"protocol": 2}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end",
            },
        }
        edit_node(p, "scalars/test_error", lambda d: d.__setitem__("codecs", [inner]))
        first_chunk(p, "scalars/test_error").write_bytes(shard_of(evil_pickle(marker)))

    @case("group_json_garbage", "the residuals group's zarr.json is not JSON", True, 1, "residuals/zarr.json")
    def _(p):
        copy(p)
        (p / "residuals" / "zarr.json").write_bytes(b'{"attributes": ')

    # -- the file system -----------------------------------------------------------------------------------
    @case("symlink_chunk_outside", "a chunk file is a symlink to a file outside the store", False, 1, "scalars/loss/c/0", True)
    def _(p):
        copy_with_chunk_replaced(p, "scalars/loss", lambda chunk: chunk.symlink_to(outside / "secret.txt"))

    @case("symlink_metadata_outside", "an array's zarr.json is a symlink leaving the store", True, 1, "scalars/loss/zarr.json")
    def _(p):
        copy(p)
        meta = p / "scalars" / "loss" / "zarr.json"
        shutil.copy(meta, outside / "loss_zarr.json")
        meta.unlink()
        meta.symlink_to(outside / "loss_zarr.json")

    @case("symlink_group_outside", "the scalars group directory is a symlink leaving the store", True, 1, "leaving the store")
    def _(p):
        copy(p)
        shutil.rmtree(p / "scalars")
        (p / "scalars").symlink_to(outside / "scalars_copy", target_is_directory=True)

    @case("symlink_dev_zero", "a chunk file is a symlink to /dev/zero (endless read)", False, 1, "/dev/zero", True)
    def _(p):
        copy_with_chunk_replaced(p, "residuals/residual", lambda chunk: chunk.symlink_to("/dev/zero"))

    @case("fifo_chunk", "a chunk file is a named pipe (a read would block forever)", False, 1, "activations/layer_0", True)
    def _(p):
        copy_with_chunk_replaced(p, "activations/layer_0", os.mkfifo)

    @case("fifo_metadata", "a group's zarr.json is a named pipe", True, 1, "activations/zarr.json")
    def _(p):
        copy(p)
        meta = p / "activations" / "zarr.json"
        meta.unlink()
        os.mkfifo(meta)

    # -- numbers -------------------------------------------------------------------------------------------
    def fill_floats(p, value):
        g = zarr.open_group(p, mode="r+")
        for _gname, group in g.groups():
            for _, arr in group.arrays():
                if arr.dtype.kind == "f":
                    arr[...] = value

    @case("nan_everywhere", "every float value is NaN", False, 0)
    def _(p):
        copy(p)
        fill_floats(p, np.nan)

    @case("inf_everywhere", "every float value is +inf", False, 0)
    def _(p):
        copy(p)
        fill_floats(p, np.inf)

    @case("zero_variance", "every batch gradient equal: sum_sigma2 = 0, SNR infinite", False, 0)
    def _(p):
        copy(p)
        g = zarr.open_group(p, mode="r+")
        bg = g["batch_gradients/batch_gradients"]
        grads = bg[...]
        bg[...] = np.repeat(grads[:, :1, :], grads.shape[1], axis=1)
        gs = g["gradient_stats"]
        gs["sum_sigma2"][...] = 0.0
        gs["sum_rms2"][...] = gs["sum_mu2"][...]
        # Reductions at the raw snapshot steps must still describe the raw rows exactly.
        steps = list(gs["step"][...])
        for row, step in enumerate(g["batch_gradients/step"][...]):
            red = batch_reductions(bg[row])
            for key, value in red.items():
                gs[key][steps.index(step)] = value

    @case("one_batch", "n_batches = 1: the batch dim has one entry, every variance is 0", False, 0)
    def _(p):
        write_healthy_store(p, n_batches=1)

    @case("one_step", "a single committed step in every group", False, 0)
    def _(p):
        write_healthy_store(p, n_steps=1)

    @case("empty_run", "a store whose groups committed nothing", True, 1, "no group holds a committed step")
    def _(p):
        store = RunWriter(p, {"layout": LAYOUT, "n_batches": 4})
        store._group("scalars")
        store.close("complete")

    @case("steps_not_increasing", "the scalars step column goes backwards", False, 1, "scalars/step")
    def _(p):
        copy(p)
        arr = zarr.open_array(p / "scalars" / "step", mode="r+")
        arr[...] = arr[...][::-1]

    @case("unknown_group", "an extra group pinnlog does not know", False, 0)
    def _(p):
        copy(p)
        g = zarr.open_group(p, mode="r+")
        g.create_group("extras").create_array("x", data=np.arange(3), dimension_names=("i",))

    # -- issue 13: silent wrong results, races and resources --------------------------------------------------
    def meta_edit(p, node, fn):
        path = p / node / "zarr.json"
        doc = json.loads(path.read_text())
        fn(doc)
        path.write_text(json.dumps(doc))

    @case("checksum_bitflip", "one bit flipped in a sum_w2 chunk (crc32c and manifest)", False, 1, "gradient_stats/sum_w2")
    def _(p):
        copy(p, keep_manifest=True)
        chunk = first_chunk(p, "gradient_stats/sum_w2")
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x10
        chunk.write_bytes(bytes(data))

    @case("swapped_chunks", "the sum_mu2 and sum_sigma2 chunk files swapped", False, 1, "CRC-32")
    def _(p):
        copy(p, keep_manifest=True)
        a, b = first_chunk(p, "gradient_stats/sum_mu2"), first_chunk(p, "gradient_stats/sum_sigma2")
        tmp = a.with_name("swap")
        a.rename(tmp), b.rename(a), tmp.rename(b)

    @case("fill_zero_deleted_chunk", "test_error fill_value 0 and its chunk deleted", True, 1, "fill_value")
    def _(p):
        copy(p, keep_manifest=True)
        meta_edit(p, "scalars/test_error", lambda d: d.__setitem__("fill_value", 0.0))
        first_chunk(p, "scalars/test_error").unlink()

    @case("big_endian_codec", "sum_w2 declared big-endian", True, 1, "endian")
    def _(p):
        copy(p, keep_manifest=True)
        meta_edit(p, "gradient_stats/sum_w2", lambda d: d["codecs"][0]["configuration"].__setitem__("endian", "big"))

    @case("inverted_is_bias", "is_bias inverted (no manifest: the layout check)", True, 1, "differs from the layout")
    def _(p):
        copy(p)
        arr = zarr.open_array(zarr.storage.LocalStore(p / "gradient_stats" / "is_bias"), mode="r+")
        arr[...] = ~arr[...]

    @case("deleted_recorded_group", "the gradient_stats folder deleted", False, 1, "gradient_stats")
    def _(p):
        copy(p, keep_manifest=True)
        shutil.rmtree(p / "gradient_stats")

    @case("json_200k_deep", "the root zarr.json nests 200,000 levels", True, 2)
    def _(p):
        copy(p)
        (p / "zarr.json").write_text("[" * 200_000 + "]" * 200_000)

    @case("config_900_deep", "a config attribute nested 900 deep", True, 2)
    def _(p):
        copy(p)
        doc = json.loads((p / "zarr.json").read_text())
        doc.pop("consolidated_metadata", None)
        text = json.dumps(doc)
        (p / "zarr.json").write_text(text[:-2] + ', "deep": ' + "[" * 900 + "]" * 900 + "}}")

    @case("symlink_loop_chunk", "a chunk that is a link to itself", False, 1, "link")
    def _(p):
        copy_with_chunk_replaced(p, "scalars/loss", lambda chunk: chunk.symlink_to(chunk))

    @case("compression_bomb", "a Blosc header promising 2 GiB", False, 1, "scalars/loss")
    def _(p):
        import struct

        copy(p)
        chunk = first_chunk(p, "scalars/loss")
        data = bytearray(chunk.read_bytes())
        struct.pack_into("<I", data, 4, 2**31)
        chunk.write_bytes(bytes(data))

    @case("huge_static_shape", "numel of shape 2**33 in one chunk", True, 1, "gradient_stats/numel")
    def _(p):
        copy(p)

        def grow(d):
            d["shape"] = [2**33]
            d["chunk_grid"]["configuration"]["chunk_shape"] = [2**33]

        meta_edit(p, "gradient_stats/numel", grow)

    @case("storage_transformers", "an array declaring a storage transformer", True, 1, "storage_transformers")
    def _(p):
        copy(p)
        meta_edit(p, "scalars/loss", lambda d: d.__setitem__("storage_transformers", [{"name": "evil"}]))

    @case("bad_chunk_separator", "a chunk_key_encoding separator of '|'", True, 1, "chunk_key_encoding")
    def _(p):
        copy(p)
        meta_edit(
            p,
            "scalars/loss",
            lambda d: d.__setitem__("chunk_key_encoding", {"name": "default", "configuration": {"separator": "|"}}),
        )

    @case("diverged_values", "a diverged run: test error 3e265, loss up to 1e308 (real data, not damage)", False, 0)
    def _(p):
        copy(p)
        g = zarr.open_group(p, mode="r+")
        n = g["scalars/test_error"].shape[0]
        g["scalars/test_error"][...] = np.full(n, 3e265)
        g["scalars/loss"][...] = np.logspace(0, 308, n)

    assert tuple(cases) == CASE_NAMES, "CASE_NAMES must list the cases build_corpus writes, in order"
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/reliability/hostile_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    cases = build_corpus(out, out / "_MARKER_code_ran")
    for c in cases.values():
        print(f"{c.name:28s} open_refused={c.open_refused!s:5s} verify_exit={c.verify_exit}  {c.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
