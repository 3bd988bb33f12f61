"""docs/artifact.md and the manifest's JSON Schema describe what the runtimes read, and the Python
runtime refuses a manifest that breaks the schema in one line naming the field."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgegnn.runtime import Recommender
from edgegnn.runtime.errors import ArtifactError
from edgegnn.runtime.manifest import SCHEMA

REPO = Path(__file__).resolve().parents[2]
SPEC = (REPO / "docs" / "artifact.md").read_text()
READ_TABLE = SPEC.split("## Fields a runtime reads")[1].split("### Informational fields")[0]


def _fields_read() -> set[str]:
    """Top-level manifest fields the Python and JavaScript runtimes read (by their source)."""
    python = "".join(p.read_text() for p in (REPO / "edgegnn" / "runtime").glob("*.py"))
    js = "".join(p.read_text() for p in (REPO / "runtimes" / "js" / "src").glob("*.js"))
    found = set(re.findall(r'manifest(?:\.get\(|\[)"([a-z_]+)"', python))
    found |= set(re.findall(r"manifest\??\.([a-z_]+)", js)) - {"json"}
    return found


def test_every_field_a_runtime_reads_is_specified_and_in_the_schema():
    read = _fields_read()
    assert {"files", "popularity", "top_k", "items_file", "probability", "class_heads"} <= read
    schema = json.loads(SCHEMA.read_text())
    for field in read:
        assert f"`{field}`" in READ_TABLE, f"docs/artifact.md's table of fields a runtime reads lacks {field}"
        assert field in schema["properties"], f"the schema lacks {field}"


def test_every_schema_field_is_described():
    for field in json.loads(SCHEMA.read_text())["properties"]:
        assert f"`{field}`" in SPEC, f"docs/artifact.md does not describe {field}"


@pytest.mark.parametrize("change, message", [
    (lambda m: m["files"]["model.onnx"].update(sha256="ABC"), r"files\.model\.onnx\.sha256 must match pattern"),
    (lambda m: m.pop("top_k"), r"must contain .*'top_k'"),
    (lambda m: m.update(top_k="20"), r"top_k must be integer"),
    (lambda m: m["inputs"][0].update(dtype="int16"), r"inputs\[0\]\.dtype must be one of"),
    (lambda m: m.update(variant="session"), r"variant must be one of"),
    (lambda m: m.update(popularity={"rows": [1]}), r"popularity must be valid exactly by one definition"),
])
def test_a_manifest_that_breaks_the_schema_is_refused_naming_the_field(artifacts, tmp_path, change, message):
    directory = shutil.copytree(artifacts("cpu-x86_64", "fp32"), tmp_path / "a")
    manifest = json.loads((directory / "manifest.json").read_text())
    change(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=message) as error:
        Recommender.open(directory)
    assert "artifact schema" in str(error.value) and "\n" not in str(error.value)
