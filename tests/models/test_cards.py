"""Model cards: frozen, validated, round-trip through YAML; the shipped cards load."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from edgegnn.errors import ConfigError
from edgegnn.models import LightGCNConfig, ModelCard, SAGEConfig, TrainConfig, load_model_card
from tests.conftest import REPO


@pytest.mark.parametrize("path", sorted((REPO / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_cards_load_and_round_trip(path, tmp_path):
    card = load_model_card(path)
    copy = tmp_path / "card.yaml"
    copy.write_text(yaml.safe_dump(card.to_dict()))
    assert load_model_card(copy) == card


def test_default_card_is_models_lightgcn_yaml():
    shipped = load_model_card(REPO / "models" / "lightgcn.yaml")
    default = ModelCard(name="lightgcn")
    assert shipped.model == default.model
    assert shipped.training == default.training


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LightGCNConfig().embedding_dim = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3


@pytest.mark.parametrize("data, field, fragment", [
    ({"model": {"type": "lightgcn", "embedding_dim": 0}}, "embedding_dim", "1 <= embedding_dim"),
    ({"model": {"type": "lightgcn", "layers": 3}}, "layers", "unknown key"),
    ({"model": {"type": "transformer"}}, "model.type", "lightgcn, sage, gat, graph-filter"),
    ({"model": {"type": "sage", "hidden_dim": "wide"}}, "hidden_dim", "expected int"),
    ({"training": {"loss": "mse"}}, "loss", "whole-data, bpr, bce"),
    ({"training": {"learning_rate": -1}}, "learning_rate", "0.0 < learning_rate"),
    ({"training": {"optimizer": "lbfgs"}}, "optimizer", "adam, adagrad, rmsprop, sgd"),
    ({"training": {"momentum": 0.9}}, "training.momentum", "only sgd and rmsprop take a momentum"),
    ({"extra": 1}, "extra", "unknown key"),
])
def test_bad_cards_name_field_value_and_allowed(tmp_path, data, field, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", **data}))
    with pytest.raises(ConfigError) as info:
        load_model_card(path)
    message = str(info.value)
    assert field in message and fragment in message and str(path) in message


def test_not_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_model_card(path)


def test_sage_card_builds_sage_config():
    assert isinstance(load_model_card(REPO / "models" / "sage.yaml").model, SAGEConfig)
