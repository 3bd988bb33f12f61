"""Artifact folders written atomically: staged in a temp folder beside the target, then swapped in.

A failure at any point leaves the old artifact or none, never half of one; a folder that exists
and is not an artifact is never replaced. Used by the exporter and by the runtime when it
applies a patch (`edgegnn.runtime.patch`), so it imports nothing beyond the runtime.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgegnn.errors import ExportError
from edgegnn.runtime.manifest import MANIFEST


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
