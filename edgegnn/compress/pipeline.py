"""`compress`: the one verb. Applies pass configs in order through a registry of pure passes.

    edge = compress(fold(checkpoint), LowRankConfig(rank=32, finetune_steps=200),
                    QuantizeConfig(precision="int8"), calibration=Calibration.from_split(split))

Each pass is a pure function `(EdgeModel, config, calibration) -> EdgeModel`: the input
model is never modified, the output's recipe is the input's plus `{"pass": name, **config}`.
`REGISTRY` maps the config type to its pass (torchao's `quantize_(model, config)` shape);
registering a new config type there is how a pass is added.
"""

from __future__ import annotations

from collections.abc import Callable

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import LowRankConfig, ProductQuantizeConfig, PruneConfig, QuantizeConfig, ShareConfig
from edgegnn.compress.lowrank import low_rank
from edgegnn.compress.pq import product_quantize
from edgegnn.compress.prune import prune
from edgegnn.compress.quantize import quantize
from edgegnn.compress.share import share_tables
from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ConfigError

Pass = Callable[[EdgeModel, object, "Calibration | None"], EdgeModel]

REGISTRY: dict[type, Pass] = {
    PruneConfig: prune,
    LowRankConfig: low_rank,
    QuantizeConfig: quantize,
    ShareConfig: share_tables,
    ProductQuantizeConfig: product_quantize,
}


def compress(edge: EdgeModel, *configs, calibration: Calibration | None = None) -> EdgeModel:
    """`edge` after every config's pass, in the given order (no configs: `edge` itself)."""
    for config in configs:
        handler = REGISTRY.get(type(config))
        if handler is None:
            allowed = ", ".join(cls.__name__ for cls in REGISTRY)
            raise ConfigError("config", type(config).__name__, f"not a compression config; allowed: {allowed}")
        edge = handler(edge, config, calibration)
    return edge
