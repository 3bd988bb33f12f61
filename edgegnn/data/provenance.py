"""`DataRecord`: which data a split is, so that a model is measured on the split it was trained on.

A split is its source (a path or a synthetic spec), the reader and split options (format,
columns, implicit threshold, k-core, split method, ratios, seed) and the bytes of its files.
`load_dataset` attaches the record to every `Split`; a checkpoint keeps the record of its
training split, and so do the edge models folded from it and the artifacts exported from
those. `evaluate`, `compress`, `export` and `profile` then load the model's own split by
default, and a different one is refused, or with `--other-data` measured and said out loud
(`compare`): another seed or ratio re-splits the same interactions, so test items would be
training items of the model and the metrics would not be what they claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegnn.runtime.manifest import sha256_file as sha256  # the runtime's (light: hashlib only)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataRecord:
    """A split's identity.

    Attributes:
        spec: the data as `load_dataset` took it: an absolute path, or "synthetic:...".
        options: the `load_dataset` keyword arguments that shaped the split (all of them,
            defaults included, so that a later default change cannot alias two splits).
        files: file path (relative to `spec` for a directory, else its name) -> sha256.
    """

    spec: str
    options: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"spec": self.spec, "options": dict(self.options), "files": dict(self.files)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "DataRecord | None":
        if not data:
            return None
        return cls(spec=str(data["spec"]), options=dict(data["options"]), files=dict(data.get("files", {})))

    def describe(self) -> str:
        """One line: the source and the options that shape the split."""
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if v is not None)
        return f"{self.spec} ({shown})"

    def changed_files(self) -> list[str]:
        """The recorded files that are gone or whose bytes changed since the record was made."""
        root = Path(self.spec)
        changed = []
        for name, digest in sorted(self.files.items()):
            path = root / name if root.is_dir() else root.parent / name
            if not path.is_file() or sha256(path) != digest:
                changed.append(name)
        return changed


def record_for(spec: str, options: dict[str, Any], files: list[Path]) -> DataRecord:
    """The record of a split loaded from `spec` with `options`, reading `files`."""
    path = Path(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        return DataRecord(spec=spec, options=dict(options))
    root = path.resolve()
    base = root if root.is_dir() else root.parent
    return DataRecord(spec=str(root), options=dict(options),
                      files={str(f.resolve().relative_to(base)): sha256(f) for f in files})


def compare(trained_on: DataRecord | None, measured_on: DataRecord | None) -> dict:
    """{"same_as_training": bool | None, "differences": [...], "trained_on": ..., "measured_on": ...}.

    None when either side is unknown (a checkpoint from before data records, or a split built
    in code without `load_dataset`).
    """
    out = {"trained_on": None if trained_on is None else trained_on.to_dict(),
           "measured_on": None if measured_on is None else measured_on.to_dict()}
    if trained_on is None or measured_on is None:
        return {**out, "same_as_training": None, "differences": []}
    differences = []
    if trained_on.spec != measured_on.spec:
        differences.append(f"data {trained_on.spec} -> {measured_on.spec}")
    for key in sorted(set(trained_on.options) | set(measured_on.options)):
        before, after = trained_on.options.get(key), measured_on.options.get(key)
        if before != after:
            differences.append(f"{key} {before!r} -> {after!r}")
    if not differences and trained_on.files != measured_on.files:
        changed = sorted(k for k in set(trained_on.files) | set(measured_on.files)
                         if trained_on.files.get(k) != measured_on.files.get(k))
        differences.append(f"files changed since training: {', '.join(changed)}")
    return {**out, "same_as_training": not differences, "differences": differences}


def load_split(given: dict[str, Any], trained_on: DataRecord | None = None, *, other_data: bool = False):
    """(Split, comparison) for data options `given` (load_dataset keyword arguments plus "data"; the
    options not given take the model's recorded ones, else load_dataset's defaults).

    With nothing given and a record, the model's own split is loaded again (files changed since
    training are a DataError). A split that is not the model's (`compare`) is a DataError unless
    `other_data`; then it is logged as a warning and the comparison says so.
    """
    from edgegnn.data.dataset import FORMATS, load_dataset
    from edgegnn.errors import DataError

    given = {k: v for k, v in given.items() if v is not None}
    if trained_on is None:
        split = load_dataset(given.pop("data", "synthetic"), **given)
        return split, compare(None, split.record)
    if not given:
        changed = trained_on.changed_files()
        if changed:
            raise DataError(f"the model's training data changed since it was trained ({', '.join(changed)}: "
                            "missing or other bytes)", path=trained_on.spec,
                            hint="pass --data (and --other-data) to measure on the data as it is now")
    options = {k: v for k, v in trained_on.options.items() if k != "format"}
    recorded_format = trained_on.options.get("format", "auto")
    kwargs = {"format": recorded_format if recorded_format in FORMATS else "auto", **options, **given}
    spec = kwargs.pop("data", trained_on.spec)
    if spec != trained_on.spec and "format" not in given:
        kwargs["format"] = "auto"          # another source: its own format
    split = load_dataset(spec, **kwargs)
    comparison = compare(trained_on, split.record)
    if comparison["same_as_training"] is False:
        what = "; ".join(comparison["differences"])
        if not other_data:
            raise DataError(f"this is not the data the model was trained on ({what})",
                            hint="leave out the data options to measure on the model's own split, or pass "
                                 "--other-data to measure on this one (it will be said in the output)")
        log.warning("measuring on other data than the model was trained on: %s", what)
    return split, comparison
