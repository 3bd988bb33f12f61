"""The artifact directory: staged in a temp folder, checksummed, then swapped in atomically.

Layout (schema version `SCHEMA_VERSION`, read by `edgegnn.runtime.manifest`):
    model.onnx | model.tflite   the graph (model.onnx.data too: ONNX tables over 1 MiB, memory-mapped)
    items*.npy                  the item index: row r of the tables is raw item id ids[r]
                                (edgegnn.runtime.items; memory-mapped by the runtime)
    manifest.json               schema_version, target, inputs/outputs, tensor storage,
                                sha256 + size of every other file, metrics measured on the
                                artifact, recipe, versions, popularity fallback
Atomic: everything is written into a temp folder in the same parent as `out_dir`, and only a
complete, verified folder replaces it (`os.replace`); an existing artifact is moved aside
first and removed after, so a failure at any point leaves the old artifact or none, never
half of one. A folder that exists and is not an artifact is never replaced.
Deterministic: no timestamps, fixed producer strings, JSON with sorted keys, so the same
inputs give byte-identical files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgegnn.runtime.items import write_item_index
from edgegnn.runtime.manifest import FORMAT, MANIFEST, SCHEMA_VERSION, sha256_file
from edgegnn.runtime.staging import check_out_dir, staged  # noqa: F401  (the exporter's entry points)

log = logging.getLogger(__name__)


def write_json(path: Path, data: Any) -> None:
    """Deterministic JSON: sorted keys, fixed separators, numpy values as plain numbers."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_items(directory: Path, item_ids: np.ndarray) -> list[str]:
    """The item index (row <-> raw id; edgegnn.runtime.items); returns its file names."""
    return write_item_index(directory, item_ids)


def file_entries(directory: Path, names: list[str]) -> dict[str, dict]:
    """{name: {"sha256", "bytes"}} for the given files of `directory`."""
    return {name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
            for name in sorted(names)}


def write_manifest(directory: Path, manifest: dict, files: list[str]) -> dict:
    """manifest.json with the format header and the checksums of `files`; returns what was written."""
    full = {**manifest, "format": FORMAT, "schema_version": SCHEMA_VERSION, "files": file_entries(directory, files)}
    write_json(directory / MANIFEST, full)
    return full
