"""Compare a graph's top-K outputs with the numpy device math, with the product's own bounds.

The bounds are `edgegnn.export.verify.score_bound`: what export checks an artifact with on each
CPU is what these tests check the graph writers with.
"""

from __future__ import annotations

import numpy as np

from edgegnn.edge_model import EdgeModel
from edgegnn.export.plan import GraphOptions, Scoring
from edgegnn.export.verify import Queries, check_outputs, score_bound


def scoring(edge: EdgeModel, options: GraphOptions, fmt: str = "onnx") -> Scoring:
    """How the graph of `edge` with `options` scores the catalog (as its writer plans it)."""
    if fmt == "onnx":
        from edgegnn.export import onnx_graph
        return onnx_graph.plan(edge, options).scoring
    from edgegnn.export import tflite_graph
    return tflite_graph.plan(edge, options)[0].scoring


def check_top(edge: EdgeModel, hist, base, items: np.ndarray, scores: np.ndarray, *, options: GraphOptions,
              fmt: str = "onnx", exact: bool = False, user: bool = False) -> None:
    """The returned items and scores are the simulation's within `score_bound`, top-K as sets.

    `exact`: also within 1e-5 of the largest score (float graphs, and integer graphs whose rounding
    the simulation does as they do). `user`: the graph took `edge.encode(hist, base)` as input.
    """
    queries = (Queries(embeddings=edge.encode(hist, base)) if user else
               Queries(histories=tuple(np.asarray(h, np.int64) for h in hist), user_base=base))
    reference, bound = score_bound(edge, scoring(edge, options, fmt), queries, precision=options.precision)
    result = check_outputs(reference, bound, items, scores)
    assert result["passed"], result
    if exact:
        expected = np.take_along_axis(reference, items.astype(np.int64), axis=1)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
