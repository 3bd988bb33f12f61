"""`compress`: the one verb. Applies pass configs in order through a registry of pure passes.

    edge = compress(fold(checkpoint), LowRankConfig(rank=32, finetune_steps=200),
                    QuantizeConfig(precision="int8"), calibration=Calibration.from_split(split))

Each pass is a pure function `(EdgeModel, config, calibration) -> EdgeModel`: the input
model is never modified, the output's recipe is the input's plus `{"pass": name, **config}`.
Each pass module registers its pass beside its code (`edgegnn.compress.registry.register_pass`);
importing the modules here fills `REGISTRY`.
"""

from __future__ import annotations

from edgegnn.compress import inverted, lowrank, pq, prune, quantize, share  # noqa: F401 -- each registers its pass
from edgegnn.compress.calibration import Calibration
from edgegnn.compress.registry import REGISTRY
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError
from edgegnn.retrieval import ROWS


def compress(edge: EdgeModel, *configs, calibration: Calibration | None = None) -> EdgeModel:
    """`edge` after every config's pass, in the given order (no configs: `edge` itself)."""
    for config in configs:
        handler = REGISTRY.get(type(config))
        if handler is None:
            allowed = ", ".join(cls.__name__ for cls in REGISTRY)
            raise ConfigError("config", type(config).__name__, f"not a compression config; allowed: {allowed}")
        if ROWS in edge.tensors:    # the lists index the item table as it is: nothing may change it after
            raise ConfigError(f"{config.PASS} pass", "after retrieval", "the retrieval pass must be the last pass")
        edge = handler(edge, config, calibration)
    return edge
