"""Errors of the edge runtime: a bad artifact, or a bad call.

Both are `edgegnn.errors.EdgeGNNError`s (one line, a hint, an exit code for the CLI), and
`edgegnn.errors` imports nothing heavy, so an app that embeds the runtime still loads only
numpy and its runtime.
"""

from __future__ import annotations

from edgegnn.errors import EdgeGNNError, ExportError


class ArtifactError(ExportError):
    """An artifact that cannot be used: corrupt, tampered with, or too new (exit 3)."""


class NotAnArtifactError(ArtifactError):
    """A path that is no artifact at all (missing, or a folder without a manifest): the user's
    mistake, exit 1 (README: 1 user error, 3 export or runtime failure)."""

    exit_code = 1


class RecommendError(EdgeGNNError, ValueError):
    """A call the artifact cannot answer: bad k, bad shapes or dtypes, NaN inputs (exit 1).

    Also a ValueError, so apps can catch it the way they catch any bad argument.
    """
