"""GNN recommenders (torch + PyG) and their model cards."""

from edgegnn.models.card import (LightGCNConfig, ModelCard, SAGEConfig, TrainConfig,
                                 load_model_card)


def build_model(card_model, num_users: int, num_items: int):
    """The torch module for a model config (LightGCNConfig or SAGEConfig)."""
    from edgegnn.models.lightgcn import LightGCNRecommender
    from edgegnn.models.sage import SAGERecommender

    if isinstance(card_model, LightGCNConfig):
        return LightGCNRecommender(num_users, num_items, card_model)
    return SAGERecommender(num_users, num_items, card_model)


__all__ = ["LightGCNConfig", "SAGEConfig", "TrainConfig", "ModelCard", "load_model_card",
           "build_model"]
