"""Save and load an EdgeModel: `edge.npz` (every stored array) + `edge.json` (the spec).

edge.json: format and version, kind, params, item ids, recipe, activation scales and the levels
they were calibrated for (format 2; format-1 scales, calibrated for 127 levels, load rescaled), total
bytes, and each tensor's storage as a tree ({"storage": "int8", "arrays": {"q": key, ...}},
low-rank tensors with "left"/"right" subtrees, row-scaled ones with "base"/"row_scale"
subtrees, product-quantized leaves with "codes"/"codebooks" arrays, a factor shared with an earlier tensor as
{"ref": key-prefix}). edge.npz: the arrays under those keys, tensors in sorted name order.
int4 codes are packed two per byte, so the file is the model's `nbytes` plus headers.

Deterministic: the same EdgeModel gives byte-identical files (the .npz is written with
zipfile, uncompressed, with a fixed timestamp; np.savez stamps the current time).
Atomic: both files are written to a temporary folder next to the target, which then
replaces the target folder (or, if it exists, each file is moved in with os.replace).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgegnn.edge_model import ACTIVATION_LEVELS, EdgeModel
from edgegnn.errors import CheckpointError, EdgeGNNError
from edgegnn.tensors import (
    DenseTensor,
    LowRankTensor,
    MixedQuantizedTensor,
    ProductQuantizedTensor,
    QuantizedSparseTensor,
    QuantizedTensor,
    RowScaledTensor,
    SparseTensor,
    Stored,
)

log = logging.getLogger(__name__)
FORMAT = "edgegnn-edge-model"
FORMAT_VERSION = 2     # 2: activation scales for ACTIVATION_LEVELS (version 1: 127 levels each)
ARRAYS, SPEC = "edge.npz", "edge.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def save_edge_model(edge: EdgeModel, directory: str | Path) -> Path:
    """Write `edge.npz` and `edge.json` into `directory` (created if needed), atomically."""
    directory = Path(directory)
    spec, arrays = _serialized(edge)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; it becomes the (shareable) model folder
        _write_npz(tmp / ARRAYS, arrays)
        (tmp / SPEC).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        if directory.exists():
            for name in (ARRAYS, SPEC):
                os.replace(tmp / name, directory / name)
            tmp.rmdir()
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def edge_digest(edge: EdgeModel) -> str:
    """sha256 of what `save_edge_model` writes of `edge` (its spec and every array, with dtype and
    shape): the same model, in memory or loaded back, has the same digest. An artifact records
    the digest of the model it was exported from (manifest model.digest), so that `edgegnn
    update` can refuse a model that is not that one."""
    import hashlib

    spec, arrays = _serialized(edge)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{list(array.shape)}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _serialized(edge: EdgeModel) -> tuple[dict, dict[str, np.ndarray]]:
    """(edge.json's spec, the arrays edge.npz holds by key)."""
    arrays: dict[str, np.ndarray] = {}
    seen: dict[int, str] = {}
    tensors = {name: _describe(edge.tensors[name], name, arrays, seen) for name in sorted(edge.tensors)}
    spec = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": edge.kind,
            "params": _plain(dict(edge.params)), "item_ids": [str(x) for x in edge.item_ids],
            "recipe": _plain(list(edge.recipe)), "activation_scales": _plain(dict(edge.activation_scales)),
            "activation_levels": {name: ACTIVATION_LEVELS[name] for name in edge.activation_scales},
            "data": _plain(edge.data),
            "bytes": edge.nbytes, "num_params": edge.num_params, "tensors": tensors}
    return spec, arrays


def load_edge_model(directory: str | Path) -> EdgeModel:
    """Read what `save_edge_model` wrote; a missing or foreign folder is a CheckpointError."""
    directory = Path(directory)
    spec_path, arrays_path = directory / SPEC, directory / ARRAYS
    if not spec_path.is_file() or not arrays_path.is_file():
        raise CheckpointError(f"{directory}: not an edge model folder (needs {SPEC} and {ARRAYS})")
    try:
        spec = json.loads(spec_path.read_text())
        if spec.get("format") != FORMAT or not isinstance(spec.get("format_version"), int):
            raise CheckpointError(f"{spec_path}: not an edgegnn edge model (no '{FORMAT}' header)")
        if spec["format_version"] > FORMAT_VERSION:
            raise CheckpointError(f"{spec_path}: format version {spec['format_version']} is newer than "
                                  f"this edgegnn supports ({FORMAT_VERSION})", hint="upgrade edgegnn")
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        built: dict[str, Stored] = {}
        tensors = {name: _build(desc, name, arrays, built) for name, desc in spec["tensors"].items()}
        return EdgeModel(kind=spec["kind"], tensors=tensors, item_ids=np.asarray(spec["item_ids"]),
                         params=spec["params"], recipe=tuple(spec["recipe"]),
                         activation_scales=_activation_scales(spec), data=spec.get("data"))
    except EdgeGNNError:
        raise
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{directory}: damaged edge model ({type(exc).__name__}: {exc})".split("\n")[0]) from None


def _activation_scales(spec: dict) -> dict[str, float]:
    """The scales for today's ACTIVATION_LEVELS. A scale s calibrated for L' levels clips at L'·s;
    for L levels the same clip range is L'·s / L (coarser steps, nothing clipped that was not):
    edge models of format 1 used 127 levels for every activation ("user" is 63 now)."""
    saved = spec.get("activation_levels", {}) if spec["format_version"] >= 2 else {}
    scales = {}
    for name, scale in spec["activation_scales"].items():
        levels = int(saved.get(name, 127))
        scales[name] = float(scale) * levels / ACTIVATION_LEVELS[name]
        if levels != ACTIVATION_LEVELS[name]:
            log.info("activation scale %r: calibrated for %d levels, rescaled to %d (same clip range)", name,
                     levels, ACTIVATION_LEVELS[name])
    return scales


# ---- stored tensor <-> (descriptor, arrays) ----------------------------------------------

def _describe(tensor: Stored, key: str, arrays: dict, seen: dict[int, str]) -> dict[str, Any]:
    if id(tensor) in seen:
        return {"ref": seen[id(tensor)]}
    seen[id(tensor)] = key
    if isinstance(tensor, LowRankTensor):
        return {"storage": "low-rank", "left": _describe(tensor.left, f"{key}.left", arrays, seen),
                "right": _describe(tensor.right, f"{key}.right", arrays, seen)}
    if isinstance(tensor, RowScaledTensor):
        return {"storage": "row-scaled", "base": _describe(tensor.base, f"{key}.base", arrays, seen),
                "row_scale": _describe(tensor.row_scale, f"{key}.row_scale", arrays, seen)}
    desc, parts = _parts(tensor)
    desc["arrays"] = {}
    for part, array in parts.items():
        arrays[f"{key}.{part}"] = np.ascontiguousarray(array)
        desc["arrays"][part] = f"{key}.{part}"
    return desc


def _parts(tensor: Stored) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A leaf's descriptor (without arrays) and its arrays by part name."""
    if isinstance(tensor, DenseTensor):
        return {"storage": "dense"}, {"values": tensor.values}
    if isinstance(tensor, MixedQuantizedTensor):
        rows = tensor.int4_rows
        return ({"storage": "int8+int4", "shape": list(tensor.shape)},
                {"q8": tensor.q[~rows], "q4": pack_int4(tensor.q[rows]), "scale": tensor.scale,
                 "int4_mask": tensor.int4_mask})
    if isinstance(tensor, QuantizedTensor):
        codes = tensor.q if tensor.bits == 8 else pack_int4(tensor.q)
        return {"storage": f"int{tensor.bits}", "shape": list(tensor.shape)}, {"q": codes, "scale": tensor.scale}
    if isinstance(tensor, QuantizedSparseTensor):
        codes = tensor.q if tensor.bits == 8 else pack_int4(tensor.q)
        return ({"storage": f"sparse-csr-int{tensor.bits}", "shape": list(tensor.shape), "nnz": int(tensor.q.size)},
                {"indptr": tensor.indptr, "indices": tensor.indices, "q": codes, "scale": tensor.scale})
    if isinstance(tensor, SparseTensor):
        return ({"storage": "sparse-csr", "shape": list(tensor.shape)},
                {"indptr": tensor.indptr, "indices": tensor.indices, "values": tensor.values})
    if isinstance(tensor, ProductQuantizedTensor):
        return {"storage": "product-quantized", "shape": list(tensor.shape)}, \
            {"codes": tensor.codes, "codebooks": tensor.codebooks}
    raise TypeError(f"cannot save a stored tensor of type {type(tensor).__name__}")


def _build(desc: dict[str, Any], key: str, arrays: dict[str, np.ndarray], built: dict[str, Stored]) -> Stored:
    if "ref" in desc:
        return built[desc["ref"]]
    storage = desc["storage"]
    if storage == "low-rank":
        tensor: Stored = LowRankTensor(_build(desc["left"], f"{key}.left", arrays, built),
                                       _build(desc["right"], f"{key}.right", arrays, built))
    elif storage == "row-scaled":
        tensor = RowScaledTensor(_build(desc["base"], f"{key}.base", arrays, built),
                                 _build(desc["row_scale"], f"{key}.row_scale", arrays, built))
    else:
        a = {part: arrays[name] for part, name in desc["arrays"].items()}
        tensor = _leaf(storage, desc, a)
    built[key] = tensor
    return tensor


def _leaf(storage: str, desc: dict[str, Any], a: dict[str, np.ndarray]) -> Stored:
    shape = tuple(desc.get("shape", ()))
    if storage == "dense":
        return DenseTensor(a["values"])
    if storage == "int8":
        return QuantizedTensor(a["q"], a["scale"], 8)
    if storage == "int4":
        return QuantizedTensor(unpack_int4(a["q"], int(np.prod(shape))).reshape(shape), a["scale"], 4)
    if storage == "int8+int4":
        rows = np.unpackbits(a["int4_mask"], count=shape[0]).astype(bool)
        q = np.empty(shape, dtype=np.int8)
        q[~rows] = a["q8"]
        q[rows] = unpack_int4(a["q4"], int(rows.sum()) * shape[1]).reshape(-1, shape[1])
        return MixedQuantizedTensor(q, a["scale"], 8, a["int4_mask"])
    if storage == "product-quantized":
        return ProductQuantizedTensor(a["codes"], a["codebooks"])
    if storage == "sparse-csr":
        return SparseTensor(shape, a["indptr"], a["indices"], a["values"])
    if storage.startswith("sparse-csr-int"):
        bits = int(storage.removeprefix("sparse-csr-int"))
        codes = a["q"] if bits == 8 else unpack_int4(a["q"], int(desc["nnz"]))
        return QuantizedSparseTensor(shape, a["indptr"], a["indices"], codes, a["scale"], bits)
    raise ValueError(f"unknown storage {storage!r}")


def pack_int4(codes: np.ndarray) -> np.ndarray:
    """uint8 [ceil(n/2)]: int4 codes in [-8, 7], two per byte (first in the low nibble)."""
    nibbles = (codes.ravel().astype(np.int16) & 0x0F).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    """int8 [count]: the codes `pack_int4` packed (sign-extended)."""
    nibbles = np.empty(packed.size * 2, dtype=np.int16)
    nibbles[0::2], nibbles[1::2] = packed & 0x0F, packed >> 4
    return np.where(nibbles >= 8, nibbles - 16, nibbles)[:count].astype(np.int8)


# ---- files --------------------------------------------------------------------------------

def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz np.load reads, byte-identical for identical arrays (fixed timestamps, no compression)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python numbers and lists, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
