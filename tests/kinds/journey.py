"""The CLI journey every device kind must survive: int8, both export formats, a first click."""

from __future__ import annotations

import json


def compress_export_serve(runner, app, model, tmp_path) -> None:
    """compress MODEL to int8, export it for ONNX Runtime and LiteRT, and serve a first click:
    each artifact's metrics agree with its simulation within the export's own int8 gate (near-
    ties may order differently in the runtime's int8 kernels), and a one-item history gets k
    items from the model itself, not the popularity fallback."""
    from edgegnn.export import TOLERANCE
    from edgegnn.runtime import Recommender

    compressed = tmp_path / "int8"
    result = runner.invoke(app, ["compress", str(model), "--quantize", "int8", "--out", str(compressed), "--json"])
    assert result.exit_code == 0, result.output
    for target in ("cpu-x86_64", "android-litert"):
        out = tmp_path / target
        result = runner.invoke(app, ["export", str(compressed), "--target", target, "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        measured = json.loads(result.stdout)["manifest"]["metrics"]
        assert abs(measured["artifact"]["recall@20"] - measured["simulation"]["recall@20"]) <= TOLERANCE["int8"]
        recommender = Recommender.open(out)
        assert not recommender.has_user_base
        first_click = recommender.recommend([str(recommender.item_ids[0])], k=5)
        assert len(first_click.items) == 5 and not first_click.fallback
