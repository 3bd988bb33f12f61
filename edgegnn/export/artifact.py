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
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgegnn.errors import ExportError
from edgegnn.runtime.items import write_item_index
from edgegnn.runtime.manifest import FORMAT, MANIFEST, SCHEMA_VERSION, sha256_file

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


def check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a path that is a file, or a non-empty folder that is not an artifact."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder", hint="choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise ExportError(f"{out_dir}: exists, is not empty and is not an edgegnn artifact; refusing to replace it",
                          hint="choose an empty or new --out folder")


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """Yield a temp folder next to `out_dir`; on success it replaces `out_dir`, on error it is removed."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
        _commit(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, out_dir: Path) -> None:
    os.chmod(tmp, 0o755)   # mkdtemp makes 0700; an artifact is meant to be shipped and read
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    os.replace(out_dir, old / "artifact")
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old / "artifact", out_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
