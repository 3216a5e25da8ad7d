"""Store format 1 in code: group names, dimension names, variables, codecs, the chunk policy.

This module is the executable half of ``docs/format.md`` (the normative contract). It imports
neither torch nor anything of the recorder, so the recorder and the analyzer both import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pinnlog.analyzer.errors import NotAStoreError, UnknownFormatError, short

__all__ = [
    "CHECKSUM_CODEC",
    "CHUNK_MAX_BYTES",
    "DIGESTS_MAX_BYTES",
    "DIGESTS_NAME",
    "FORMAT_MINOR",
    "FORMAT_VERSION",
    "GROUPS",
    "JSON_MAX_DEPTH",
    "KNOWN_FORMATS",
    "KNOWN_MINORS",
    "METADATA_MAX_BYTES",
    "PREALLOCATED_ROWS",
    "RUN_DESCRIPTION",
    "STATUS_VALUES",
    "STRING",
    "TENSOR_STATES",
    "GroupSpec",
    "activation_dim",
    "check_format_version",
    "chunk_shape",
    "compressors",
    "fill_value",
    "name_coordinates",
    "step_chunk",
]

FORMAT_VERSION = 1  # the major version: a reader refuses majors it does not know
#: Format 1.1 (root attribute ``pinnlog_format_minor = 1``) adds the name coordinates ``tensor`` and
#: ``layer_name`` to ``gradient_stats``; 1.0 stores (no minor attribute) lack them and still open.
#: Format 1.2 (``pinnlog_format_minor = 2``) adds crc32c checksums, the chunk manifest and the writer lease
#: (docs/format.md); a 1.2 reader still opens 1.0 and 1.1 stores.
FORMAT_MINOR = 2
KNOWN_FORMATS = (1,)
KNOWN_MINORS = (0, 1, 2)
#: The variables of format 1.1 that hold names (Zarr v3 ``string``, vlen-utf8): coordinates only.
STRING = "string"
STATUS_VALUES = ("recording", "complete", "interrupted")

#: The checksum codec every chunk of a store carries since format 1.2 (root attribute ``checksums``):
#: zarr v3's ``crc32c``, last in the chain, so the checksum covers the compressed bytes and a flipped
#: bit is caught before anything is decompressed. Stores without it (1.0, 1.1) open with one note.
CHECKSUM_CODEC = "crc32c"

#: The chunk manifest a closed store holds at its root: ``{"algorithm": "crc32", "chunks": {key: crc}}``
#: for every chunk file, written by ``RunWriter.close`` before ``status`` becomes ``"complete"``.
DIGESTS_NAME = ".pinnlog-digests.json"
DIGESTS_MAX_BYTES = 256 * 2**20

#: Bounded reads (docs/reliability.md, "Bounded reads"): no metadata document is read past this size,
#: nested deeper than this, and no chunk is decoded to more than this many bytes. pinnlog itself
#: writes documents of a few kB (layout of a 10,000-tensor model: ~1 MB) and chunks of at most
#: ~4 MiB (one row of a big probe may be more: the cap leaves room for 64 M float32 values).
METADATA_MAX_BYTES = 4 * 2**20
JSON_MAX_DEPTH = 64
CHUNK_MAX_BYTES = 2**28
#: Rows every growing array is created with (2**24 = 16.8 M steps of scalars). The writer fills them and
#: only ``close`` trims them to ``n_committed``, so a killed store has one size per dimension in every
#: group; absent chunks cost nothing (zarr does not write a chunk that is all fill value).
PREALLOCATED_ROWS = 2**24

#: The root attributes that describe a run, in the order ``pinnlog info`` and ``summary.json`` show them.
RUN_DESCRIPTION = (
    "status",
    "created",
    "pinnlog_format",
    "pinnlog_version",
    "torch_version",
    "device",
    "model",
    "optimizer",
    "n_batches",
    "schedule",
    "raw_schedule",
    "residual_schedule",
    "probe_schedule",
    "shared_loss",
    "config",
    "imported_from",
)

#: Codecs a format-1 store may use. Anything else (pickle/object codecs above all) is refused.
ALLOWED_CODECS = frozenset({"bytes", "blosc", "zstd", "gzip", "crc32c", "transpose", "sharding_indexed", "vlen-utf8"})


@dataclass(frozen=True)
class GroupSpec:
    """One subgroup of a run: the axis it grows along and the variables it holds.

    ``variables`` maps a fixed variable name to its dims and dtype; groups with ``dynamic=True``
    (``scalars``: user-named scalars; ``activations``: one variable per layer) may hold more
    variables along the same axis.
    """

    name: str
    axis: str
    option: str  # the Recorder option that records this group (named in errors)
    variables: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    dynamic: bool = False
    coords: tuple[str, ...] = ()  # variables that are name coordinates (format 1.1)


GROUPS: dict[str, GroupSpec] = {
    spec.name: spec
    for spec in (
        GroupSpec(
            "scalars",
            axis="step",
            option="rec.step(step, loss=..., test_error=...)",
            variables={"step": (("step",), "int64"), "wall_time": (("step",), "float64")},
            dynamic=True,
        ),
        GroupSpec(
            "gradient_stats",
            axis="capture",
            option="schedule=",
            variables={
                "step": (("capture",), "int64"),
                "sum_mu2": (("capture", "tensor"), "float64"),
                "sum_sigma2": (("capture", "tensor"), "float64"),
                "sum_rms2": (("capture", "tensor"), "float64"),
                "sum_w2": (("capture", "tensor"), "float64"),
                "sum_m_hat2": (("capture", "tensor"), "float64"),
                "sum_adam_denom2": (("capture", "tensor"), "float64"),
                "tensor_state": (("capture", "tensor"), "int8"),
                "numel": (("tensor",), "int64"),
                "layer": (("tensor",), "int32"),
                "is_bias": (("tensor",), "bool"),
                "tensor": (("tensor",), STRING),  # 1.1: each tensor's name (layout[i].name)
                "layer_name": (("tensor",), STRING),  # 1.1: the name of the layer owning it (layers[j].name)
                "engine": (("capture",), "int8"),  # which gradient engine made each capture (recorder/engines.py)
            },
            optional=("sum_m_hat2", "sum_adam_denom2", "tensor_state", "tensor", "layer_name", "engine"),
            coords=("tensor", "layer_name"),
        ),
        GroupSpec(
            "batch_gradients",
            axis="snapshot",
            option="raw_schedule=",
            variables={
                "step": (("snapshot",), "int64"),
                "batch_gradients": (("snapshot", "batch", "param"), "float32"),
            },
        ),
        GroupSpec(
            "weights",
            axis="snapshot",
            option="raw_schedule=",
            variables={"step": (("snapshot",), "int64"), "weights": (("snapshot", "param"), "float32")},
        ),
        GroupSpec(
            "optimizer_state",
            axis="snapshot",
            option="raw_schedule= (with an Adam/AdamW optimizer)",
            variables={
                "step": (("snapshot",), "int64"),
                "optimizer_step": (("snapshot",), "int64"),
                "exp_avg": (("snapshot", "param"), "float32"),
                "exp_avg_sq": (("snapshot", "param"), "float32"),
            },
        ),
        GroupSpec(
            "residuals",
            axis="rcapture",
            option="residuals=",
            variables={
                "step": (("rcapture",), "int64"),
                "residual": (("rcapture", "sample"), "float32"),
                "rba_weight": (("rcapture", "sample"), "float32"),
            },
            optional=("rba_weight",),
        ),
        GroupSpec(
            "activations",
            axis="acapture",
            option="probe=",
            variables={"step": (("acapture",), "int64")},
            dynamic=True,
        ),
    )
}


#: ``gradient_stats/tensor_state`` codes: what each layout tensor was at a capture (docs/format.md).
TENSOR_STATES = {"trained": 0, "untrained": 1, "frozen": 2, "gone": 3}


def activation_dim(layer_name: str) -> str:
    """Name of the unit dimension of one layer's activations (widths differ between layers)."""
    return f"unit_{layer_name}"


def compressors(level: int = 3):
    """Blosc zstd with bit-shuffle, then a crc32c checksum: the codecs of every array (format 1.2).

    No float16, no object codecs. The checksum comes last, over the compressed bytes (Blosc itself
    carries none: a flipped bit decodes silently to a wrong number).
    """
    from zarr.codecs import BloscCodec, Crc32cCodec

    return (BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle"), Crc32cCodec())


def fill_value(dtype) -> object:
    """The fill value format 1 gives an array of ``dtype``: NaN (floats), false (bool), -1 (ints).

    A missing chunk reads as this, so a store whose ``fill_value`` was changed (to 0, say) would turn
    a deleted chunk of test errors into "0 % error": verify checks it.
    """
    kind = np.dtype(dtype).kind
    return np.nan if kind == "f" else (False if kind == "b" else -1)


def step_chunk(row_bytes: int, target_bytes: int = 2**21, max_rows: int = 8192) -> int:
    """Rows per chunk along a group's axis so that one chunk is about ``target_bytes`` (2 MiB)."""
    return int(np.clip(target_bytes // max(row_bytes, 1), 1, max_rows))


def chunk_shape(group: str, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """The chunk shape of a growing array of ``group`` whose shape (capacity first) is ``shape``.

    About 2 MiB per chunk along the group's axis; a ``batch_gradients`` snapshot (K x P) is one chunk
    row of all batches and ~4 MiB of parameters, so a snapshot is read whole but a tensor's slice of
    it does not drag in the rest; a single row over 4 MiB (activations of a big probe) is one chunk.
    """
    if group == "batch_gradients" and len(shape) == 3:
        k, p = shape[1], shape[2]
        return (1, k, max(1, min(p, (2**22) // max(k * itemsize, 1))))
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * itemsize
    if row_bytes > 2**22:
        return (1,) + tuple(shape[1:])
    return (step_chunk(row_bytes),) + tuple(shape[1:])


def name_coordinates(layout, layers=None) -> dict[str, list[str]] | None:
    """The ``tensor`` and ``layer_name`` coordinates of ``gradient_stats`` from the ``layout`` (and ``layers``) attributes.

    None when ``layout`` is not a list of named tensors (a hand-made or damaged store).
    """
    if not isinstance(layout, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in layout):
        return None
    names = {}
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and isinstance(layer.get("index"), int) and isinstance(layer.get("name"), str):
            names[layer["index"]] = layer["name"]
    return {
        "tensor": [t["name"] for t in layout],
        "layer_name": [names.get(t.get("layer"), f"layer_{t.get('layer')}") for t in layout],
    }


def check_format_version(fmt, path, minor=None) -> None:
    """Raise the one-line error for a ``pinnlog_format`` (and ``pinnlog_format_minor``) this version cannot read."""
    if fmt is None:
        raise NotAStoreError(f"{path} is a Zarr store but not a pinnlog run (no 'pinnlog_format' attribute)")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt not in KNOWN_FORMATS:
        raise UnknownFormatError(
            f"{path} has pinnlog_format={short(fmt)}, which this pinnlog does not know (it reads {list(KNOWN_FORMATS)}); "
            "upgrade pinnlog"
        )
    if minor is not None and (isinstance(minor, bool) or not isinstance(minor, int) or minor not in KNOWN_MINORS):
        raise UnknownFormatError(
            f"{path} has pinnlog_format_minor={short(minor)}, which this pinnlog does not know "
            f"(it reads 1.{', 1.'.join(map(str, KNOWN_MINORS))}); upgrade pinnlog"
        )
