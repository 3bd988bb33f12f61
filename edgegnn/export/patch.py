"""Make the patch that turns one artifact into another (the format: `edgegnn.runtime.patch`).

Files with the same sha256 in both manifests are kept; a changed file ships in chunks, each a
Zstandard frame against the base file's bytes around the chunk's offset (a delta), a new file
whole. zstd's level 15 (binary-tree match finder): the lazy finders of lower levels give up
on the matches a transposed table needs (a column appended to a [d, I] int8 matrix shifts every
row's bytes), and the delta of 5 % new rows on Gowalla's int8 ONNX data was 25 % of the file at
level 9, 4.8 % at 15. Deterministic: the zip has fixed timestamps and sorted members, so the
same two artifacts give the same patch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

from edgegnn.runtime.manifest import MANIFEST, read_manifest, sha256_file
from edgegnn.runtime.patch import PATCH_FORMAT, PATCH_SPEC, PATCH_VERSION

LEVEL = 15
CHUNK = 8 << 20                 # bytes of the result file per frame
MARGIN = 1 << 20                # dictionary bytes beyond the file's growth, on each side
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def make_patch(base: str | Path, result: str | Path, out: str | Path) -> dict:
    """Write the patch from artifact `base` to artifact `result` into the file `out` (atomically);
    returns its patch.json plus "bytes" (the patch file's size) and "result_bytes" (the
    result artifact's files, manifest included)."""
    base, result, out = Path(base), Path(result), Path(out)
    old, new = read_manifest(base), read_manifest(result)
    files, members = {}, {}
    for name, entry in sorted(new["files"].items()):
        if old["files"].get(name, {}).get("sha256") == entry["sha256"]:
            files[name] = {"op": "keep"}
            continue
        against = base / name if name in old["files"] else None
        frames, chunks = compress(result / name, against)
        files[name] = {"op": "delta" if against else "whole", "member": f"{name}.zst", "chunks": chunks}
        members[f"{name}.zst"] = frames
    spec = {"format": PATCH_FORMAT, "version": PATCH_VERSION, "files": files,
            "base": {"manifest_sha256": sha256_file(base / MANIFEST)},
            "result": {"manifest_sha256": sha256_file(result / MANIFEST)}}
    members[PATCH_SPEC] = (json.dumps(spec, indent=1, sort_keys=True) + "\n").encode()
    members[MANIFEST] = (result / MANIFEST).read_bytes()
    _write_zip(out, members)
    result_bytes = sum(e["bytes"] for e in new["files"].values()) + (result / MANIFEST).stat().st_size
    return {**spec, "bytes": out.stat().st_size, "result_bytes": result_bytes}


def compress(path: Path, against: Path | None) -> tuple[bytes, list[dict]]:
    """(the frames of `path`'s chunks back to back, the chunk table) against the base file
    `against` (None: no dictionary). Chunk j covers result bytes [j·CHUNK, (j+1)·CHUNK); its
    dictionary is the base's bytes from MARGIN before that range, moved back by the file's
    growth, to MARGIN after it, moved on by its shrinkage."""

    data = path.read_bytes()
    reference = against.read_bytes() if against is not None else b""
    growth = len(data) - len(reference)
    frames, chunks = [], []
    for offset in range(0, max(len(data), 1), CHUNK):
        piece = data[offset:offset + CHUNK]
        low = max(0, offset - max(growth, 0) - MARGIN) if reference else 0
        high = min(len(reference), offset + len(piece) + max(-growth, 0) + MARGIN)
        window = reference[low:high]
        frame = _frame(piece, window)
        frames.append(frame)
        chunks.append({"bytes": len(piece), "frame": len(frame), "base_offset": low, "base_bytes": len(window)})
    return b"".join(frames), chunks


def _frame(piece: bytes, window: bytes) -> bytes:
    import zstandard

    log_size = min(max(math.ceil(math.log2(max(len(piece) + len(window), 1))), 10), 31)
    params = zstandard.ZstdCompressionParameters.from_level(LEVEL, window_log=log_size, write_checksum=True,
                                                            write_content_size=True)
    dictionary = zstandard.ZstdCompressionDict(window, dict_type=zstandard.DICT_TYPE_RAWCONTENT) if window else None
    return zstandard.ZstdCompressor(compression_params=params, dict_data=dictionary).compress(piece)


def _write_zip(out: Path, members: dict[str, bytes]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                archive.writestr(info, members[name])
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

