"""The artifact's manifest: read it, check its schema version, verify every file's sha256.

An artifact directory holds the model file(s), the item index (row <-> raw item id,
`edgegnn.runtime.items`) and `manifest.json`. The manifest lists each file with its sha256
and size; the runtime refuses an artifact whose files do not match (naming the file), whose
manifest is newer than it understands, that breaks the manifest's JSON Schema
(artifact.schema.json beside this module: the format other runtimes implement, docs/artifact.md),
or that is not an edgegnn artifact at all. The schema is checked with fastjsonschema: pure
Python, no dependencies, compiled once per process to a validating function.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from edgegnn.runtime.errors import ArtifactError, NotAnArtifactError

FORMAT = "edgegnn-artifact"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SCHEMA = Path(__file__).with_name("artifact.schema.json")
_CHUNK = 1 << 20
CLASS_OUTPUT = "class_probabilities"       # the graph output of a user class head (edgegnn.class_head)
ITEM_LOGITS = "item_class_logits.f32"      # an item class head: raw little-endian float32 [I, C]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | Path) -> dict:
    """The parsed manifest of an artifact directory, its format and schema version checked."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise NotAnArtifactError(f"{directory}: no such artifact directory",
                                 hint="give the folder `edgegnn export --out` wrote")
    if not path.is_file():
        inside = sorted(str(found.parent.relative_to(directory))
                        for pattern in (f"*/{MANIFEST}", f"*/*/{MANIFEST}") for found in directory.glob(pattern))
        hint = (f"artifacts inside it: {', '.join(inside[:4])}" + (", ..." if len(inside) > 4 else "") if inside
                else "give the folder `edgegnn export --out` wrote")
        raise NotAnArtifactError(f"{directory}: not an edgegnn artifact (no {MANIFEST})", hint=hint)
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: damaged manifest ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an edgegnn artifact manifest (format is not '{FORMAT}')")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path}: schema_version={version!r} is invalid")
    if version > SCHEMA_VERSION:
        raise ArtifactError(f"{path}: manifest schema version {version} is newer than this runtime "
                            f"supports ({SCHEMA_VERSION})", hint="upgrade edgegnn to open this artifact")
    check_schema(manifest, path)
    return manifest


def check_schema(manifest: dict, where: str | Path = MANIFEST) -> None:
    """Raise ArtifactError naming the field when `manifest` breaks artifact.schema.json."""
    import fastjsonschema

    try:
        _schema_validator()(manifest)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = exc.message.removeprefix("data.").removeprefix("data ")
        raise ArtifactError(f"{where}: the manifest breaks the artifact schema: {field}",
                            hint="export the artifact again; docs/artifact.md describes every field") from None


@functools.lru_cache(maxsize=1)
def _schema_validator():
    import fastjsonschema

    return fastjsonschema.compile(json.loads(SCHEMA.read_text()))


def verify_files(directory: str | Path, manifest: dict) -> None:
    """Check every listed file's size and sha256; a missing or changed file is an ArtifactError."""
    directory = Path(directory)
    for name, entry in sorted(manifest["files"].items()):
        path = directory / name
        if Path(name).name != name:
            raise ArtifactError(f"{directory / MANIFEST}: file entry {name!r} is not a plain file name")
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != entry.get("bytes"):
            raise ArtifactError(f"{path}: size {path.stat().st_size:,} bytes, the manifest says "
                                f"{entry.get('bytes'):,}: the file is truncated or was changed",
                                hint="export the artifact again")
        if sha256_file(path) != entry.get("sha256"):
            raise ArtifactError(f"{path}: sha256 does not match the manifest: the file was changed or is damaged",
                                hint="export the artifact again")
