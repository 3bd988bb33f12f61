"""Artifact patches: what changed between two artifacts, applied to the older one.

A patch is a zip file (stored, not deflated) of:
    patch.json     {"format": "edgegnn-patch", "version": 1,
                    "base": {"manifest_sha256"}, "result": {"manifest_sha256"},
                    "files": {name: {"op": "keep"} | {"op": "delta" | "whole", "member", "chunks"}}}
    manifest.json  the result's manifest, whole
    <name>.zst     the Zstandard frames of a changed file, one per chunk, back to back
"keep": the base's file, byte for byte. "delta": the file in chunks (8 MiB each but the last);
chunk j is one Zstandard frame of `frame` bytes that decompresses to `bytes` bytes with the base
file's bytes [base_offset, base_offset + base_bytes) as a raw-content dictionary (zstd's
"patch-from" idea: a match into the old bytes costs a few bytes, so rows appended to a table or
changed in place ship as little more than the new rows). The dictionary is the neighbourhood of
the chunk's own offset, widened by how much the file grew or shrank: a row that moved by at
most that much is found, and a chunk's dictionary stays small enough for zstd to index it whole
(one dictionary of a 100 MB file is not: most matches are lost). "whole": the same, with no
dictionary (a file the base lacks).

Applying checks, in order: the base's manifest.json has the sha256 the patch names (a patch
for another artifact, or another version of it, is refused in one line); the base's files
match its manifest; every rebuilt file, and the result's manifest, match the checksums the
patch names. Only then does the result folder appear (staged, then renamed: nothing
half-written). Zstandard is the dependency because every platform has it (libzstd, and its
ports); its dictionary mode is what makes a delta out of a plain compressor.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

from edgegnn.runtime.errors import ArtifactError
from edgegnn.runtime.manifest import MANIFEST, read_manifest, sha256_file, verify_files
from edgegnn.runtime.staging import staged

PATCH_FORMAT = "edgegnn-patch"
PATCH_VERSION = 1
PATCH_SPEC = "patch.json"
MAX_WINDOW = 1 << 31                 # zstd's largest window (a chunk's dictionary plus the chunk stay far below)


class PatchError(ArtifactError):
    """A patch that does not apply: another artifact's, damaged, or not a patch (exit 1)."""

    exit_code = 1


def read_patch(path: str | Path) -> tuple[zipfile.ZipFile, dict]:
    """(the open zip, its patch.json), the format and version checked."""
    path = Path(path)
    if not path.is_file():
        raise PatchError(f"{path}: no such patch file", hint="give the file `edgegnn update --patch` wrote")
    try:
        archive = zipfile.ZipFile(path)
        spec = json.loads(archive.read(PATCH_SPEC))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise PatchError(f"{path}: not an edgegnn patch (no readable {PATCH_SPEC} inside a zip)") from None
    if not isinstance(spec, dict) or spec.get("format") != PATCH_FORMAT:
        raise PatchError(f"{path}: not an edgegnn patch (format is not '{PATCH_FORMAT}')")
    if spec.get("version") != PATCH_VERSION:
        raise PatchError(f"{path}: patch version {spec.get('version')!r}; this runtime applies version {PATCH_VERSION}",
                         hint="upgrade edgegnn")
    return archive, spec


def apply_patch(base: str | Path, patch: str | Path, out_dir: str | Path) -> Path:
    """Write the artifact `patch` makes of `base` into `out_dir` (created or replaced); returns it."""
    base, out_dir = Path(base), Path(out_dir)
    archive, spec = read_patch(patch)
    with archive:
        check_base(base, spec, patch)
        with staged(out_dir) as tmp:
            for name, entry in sorted(spec["files"].items()):
                _rebuild(name, entry, base, archive, tmp / name, patch)
            manifest_bytes = archive.read(MANIFEST)
            if hashlib.sha256(manifest_bytes).hexdigest() != spec["result"]["manifest_sha256"]:
                raise PatchError(f"{patch}: the manifest inside does not match the patch's checksum: damaged patch")
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            manifest = read_manifest(tmp)
            if set(manifest["files"]) != set(spec["files"]):
                raise PatchError(f"{patch}: lists other files than its manifest: damaged patch")
            verify_files(tmp, manifest)
    return out_dir


def check_base(base: Path, spec: dict, patch) -> None:
    """Refuse a base that is not the artifact the patch was made for, or is damaged."""
    manifest = read_manifest(base)
    found = sha256_file(base / MANIFEST)
    wanted = spec["base"]["manifest_sha256"]
    if found != wanted:
        raise PatchError(f"{patch}: made for another artifact (base manifest sha256 {wanted[:12]}...), "
                         f"{base} has {found[:12]}...", hint="apply it to the artifact it was made from")
    verify_files(base, manifest)


def _rebuild(name: str, entry: dict, base: Path, archive: zipfile.ZipFile, out: Path, patch) -> None:
    if Path(name).name != name or name == MANIFEST:
        raise PatchError(f"{patch}: file entry {name!r} is not a plain file name: damaged patch")
    op = entry.get("op")
    if op == "keep":
        shutil.copyfile(base / name, out)
        return
    if op not in ("delta", "whole"):
        raise PatchError(f"{patch}: file {name!r} has op {op!r}; allowed: keep, delta, whole")
    import zstandard

    reference = (base / name).read_bytes() if op == "delta" else b""
    try:
        with archive.open(entry["member"]) as source, open(out, "wb") as sink:
            for chunk in entry["chunks"]:
                window = reference[chunk["base_offset"]:chunk["base_offset"] + chunk["base_bytes"]]
                dictionary = zstandard.ZstdCompressionDict(window, dict_type=zstandard.DICT_TYPE_RAWCONTENT) \
                    if window else None
                frame = source.read(chunk["frame"])
                data = zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=MAX_WINDOW).decompress(frame)
                if len(data) != chunk["bytes"]:
                    raise zstandard.ZstdError(f"a chunk gave {len(data)} bytes, expected {chunk['bytes']}")
                sink.write(data)
    except (KeyError, TypeError, zstandard.ZstdError) as exc:
        raise PatchError(f"{patch}: cannot rebuild {name} ({exc}): damaged patch") from None
