"""GNN recommenders (torch + PyG) and their model cards."""

from edgegnn.models.card import (
    GATConfig,
    GraphFilterConfig,
    LightGCNConfig,
    ModelCard,
    SAGEConfig,
    TrainConfig,
    load_model_card,
)


def build_model(card_model, num_users: int, num_items: int):
    """The torch module for a model config, by its kind (`edgegnn.kinds`, `model.type`)."""
    from edgegnn.kinds import kind

    return kind(card_model.type).build_model(card_model, num_users, num_items)


__all__ = ["GATConfig", "GraphFilterConfig", "LightGCNConfig", "SAGEConfig", "TrainConfig", "ModelCard",
           "load_model_card", "build_model"]
