"""Every error edgegnn raises on purpose.

Each error carries the facts a user needs to fix the problem (file, line, field, value,
what is allowed) and renders them as one line. The CLI maps `EdgeGNNError` subclasses to
one line on stderr and an exit code; anything else is a bug and propagates.

Exit codes: 1 user error (bad input, bad config), 3 export or runtime failure.
(2 is left to the CLI framework for usage errors.)
"""

from __future__ import annotations

from pathlib import Path


class EdgeGNNError(Exception):
    """Base class: a problem the user can fix, rendered as one line."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class DataError(EdgeGNNError):
    """Malformed or unusable interaction data.

    Args:
        message: what is wrong, e.g. "item id 'x' is not an integer".
        path: the file, if the problem is in one.
        line: the 1-based line number, if known.
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message, hint=hint)


class ConfigError(EdgeGNNError):
    """A configuration value out of range, of the wrong type, or unknown.

    The message names the field, the value and what is allowed.
    """

    def __init__(self, field: str, value: object, allowed: str, *, source: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field}={value!r} is invalid: {allowed}")


class CheckpointError(EdgeGNNError):
    """A model file that is missing, corrupt, or not an edgegnn checkpoint."""


class DownloadError(EdgeGNNError):
    """A download that failed or whose checksum did not match."""


class ExportError(EdgeGNNError):
    """An export or runtime step that could not be done."""

    exit_code = 3
