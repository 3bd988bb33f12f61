"""Compress an EdgeModel: pruning, low-rank, table sharing, int8/int4, product quantization, search.

    from edgegnn.compress import Calibration, LowRankConfig, QuantizeConfig, compress, measure
    calibration = Calibration.from_split(split)
    small = compress(edge, LowRankConfig(rank=32, finetune_steps=200), QuantizeConfig(),
                     calibration=calibration)
    measure(small, split)        # {"recall@20": ..., "ndcg@20": ..., "bytes": ..., ...}

One verb (`compress`), frozen configs, a registry from config type to pass; every pass is
a pure EdgeModel -> EdgeModel function that extends the model's recipe. `search` picks a
recipe under a Recall drop and/or size budget; recipes and models save and load as files.
"""

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.configs import (
                                     CONFIG_TYPES,
                                     LowRankConfig,
                                     PassConfig,
                                     ProductQuantizeConfig,
                                     PruneConfig,
                                     QuantizeConfig,
                                     RetrievalConfig,
                                     ShareConfig,
)
from edgegnn.compress.io import load_edge_model, save_edge_model
from edgegnn.compress.measure import Evaluator, measure
from edgegnn.compress.pipeline import REGISTRY, compress
from edgegnn.compress.recipe import configs_from_entries, load_recipe, recipe_yaml, save_recipe
from edgegnn.compress.search import SearchPoint, SearchResult, default_grid, pareto_front, search

__all__ = ["Calibration", "CONFIG_TYPES", "LowRankConfig", "PassConfig", "PruneConfig", "QuantizeConfig", "ShareConfig",
           "ProductQuantizeConfig", "RetrievalConfig",
           "REGISTRY", "compress", "measure", "Evaluator", "search", "SearchResult", "SearchPoint",
           "default_grid", "pareto_front", "load_recipe", "save_recipe", "recipe_yaml", "configs_from_entries",
           "save_edge_model", "load_edge_model"]
