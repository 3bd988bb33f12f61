"""The contract every compression pass keeps, checked over every pass config on both model kinds.

- the config round-trips through dict and YAML (and a recipe file), and is frozen;
- the pass is registered, and `compress` extends the recipe by exactly its entry;
- the input EdgeModel is untouched (every array compared before and after);
- the result is deterministic (same saved bytes twice) and runs on the device math;
- passes compose in any order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from edgegnn.compress import (
    REGISTRY,
    LowRankConfig,
    ProductQuantizeConfig,
    PruneConfig,
    QuantizeConfig,
    compress,
    configs_from_entries,
    load_recipe,
    recipe_yaml,
    save_edge_model,
    save_recipe,
)
from tests.compress import one_torch_thread, random_calibration, random_edge, same_snapshot, snapshot

single_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

CONFIGS = [
    PruneConfig(method="magnitude", sparsity=0.6),
    PruneConfig(method="structured", sparsity=0.5),
    PruneConfig(method="structured", sparsity=0.25, rotate=False),
    PruneConfig(method="items", sparsity=0.3, top_k=10),
    LowRankConfig(rank=4),
    LowRankConfig(energy=0.8, joint=False),
    LowRankConfig(rank=4, finetune_steps=5),
    QuantizeConfig(precision="int8"),
    QuantizeConfig(precision="int4", calibration_method="percentile", percentile=99.0),
    QuantizeConfig(precision="mixed", tail_fraction=0.3, activations=False),
    QuantizeConfig(precision="int4", scale_dtype="float16"),
    QuantizeConfig(precision="int8", granularity="tensor"),
    # one sub-vector: any width divides (pruned and low-rank tables are narrower)
    ProductQuantizeConfig(subvectors=1, centroids=16, finetune_steps=3),
    ProductQuantizeConfig(subvectors=1, centroids=8, popularity_power=0.0, codebook_dtype="float16"),
]
IDS = ["prune-magnitude", "prune-structured", "prune-structured-axes", "prune-items", "lowrank-4",
       "lowrank-energy-separate", "lowrank-4-finetune", "int8", "int4-percentile", "mixed", "int4-fp16-scales",
       "int8-one-scale-per-table",
       "pq-finetune", "pq-fp16"]


@pytest.fixture(scope="module", params=["lightgcn", "sage"])
def edge(request):
    return random_edge(request.param)


@pytest.fixture(scope="module")
def calibration(edge):
    return random_calibration(edge)


def _saved_bytes(model, directory) -> bytes:
    save_edge_model(model, directory)
    return (directory / "edge.npz").read_bytes() + (directory / "edge.json").read_bytes()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_pass_contract(config, edge, calibration, tmp_path):
    # config: dict and YAML round trips, a recipe file, frozen
    assert type(config).from_dict(config.to_dict()) == config
    assert configs_from_entries(yaml.safe_load(recipe_yaml([config]))["passes"]) == [config]
    assert load_recipe(save_recipe([config, config], tmp_path / "recipe.yaml")) == [config, config]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sparsity = 0.1  # type: ignore[misc]
    assert type(config) in REGISTRY

    # pure: the input is untouched; the recipe grows by exactly this pass
    before = snapshot(edge)
    out = compress(edge, config, calibration=calibration)
    assert same_snapshot(before, snapshot(edge))
    assert out is not edge and out.recipe == edge.recipe + (config.recipe_entry(),)

    # deterministic: the same bytes twice
    again = compress(edge, config, calibration=calibration)
    assert _saved_bytes(out, tmp_path / "a") == _saved_bytes(again, tmp_path / "b")

    # the device math runs on the result
    histories, base = calibration.for_model(out)
    scores = out.score(out.encode(histories[:5], base[:5]))
    assert scores.shape == (5, out.num_items) and np.isfinite(scores).all()


@pytest.mark.parametrize("first", CONFIGS, ids=IDS)
def test_passes_compose(first, edge, calibration):
    """Every pass runs after every other one (sharing, sparse, quantized and narrowed inputs)."""
    for second in CONFIGS:
        model = compress(edge, first, second, calibration=calibration)
        histories, base = calibration.for_model(model)
        assert np.isfinite(model.score(model.encode(histories[:3], base[:3]))).all(), (first, second)
        assert len(model.recipe) == 2


def test_compress_without_configs_is_the_identity_and_rejects_foreign_configs(edge):
    from edgegnn.errors import ConfigError

    assert compress(edge) is edge
    with pytest.raises(ConfigError, match="not a compression config"):
        compress(edge, {"pass": "quantize"})


@pytest.mark.parametrize("build, fragment", [
    (lambda: PruneConfig(sparsity=1.0), "prune.sparsity=1.0 is invalid: must satisfy 0.0 <= sparsity < 1.0"),
    (lambda: PruneConfig(sparsity=-0.1), "prune.sparsity=-0.1"),
    (lambda: PruneConfig(method="random"), "prune.method='random' is invalid: allowed: magnitude, structured, items"),
    (lambda: PruneConfig(method="structured", tensors=("item",)), "only the magnitude method"),
    (lambda: LowRankConfig(), "exactly one of rank and energy"),
    (lambda: LowRankConfig(rank=8, energy=0.9), "exactly one of rank and energy"),
    (lambda: LowRankConfig(rank=0), "low_rank.rank=0"),
    (lambda: LowRankConfig(energy=1.5), "low_rank.energy=1.5"),
    (lambda: LowRankConfig(rank="32"), "low_rank.rank='32' is invalid: expected int | NoneType"),
    (lambda: QuantizeConfig(precision="int3"), "quantize.precision='int3' is invalid: allowed: int8, int4, mixed"),
    (lambda: QuantizeConfig(percentile=10.0), "quantize.percentile=10.0"),
    (lambda: QuantizeConfig.from_dict({"precision": "int8", "bits": 8}, source="r.yaml"),
     "r.yaml: bits=8 is invalid: unknown key"),
])
def test_bad_configs_name_field_value_and_range(build, fragment):
    from edgegnn.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        build()
    assert fragment in str(error.value)


def test_recipe_files_report_unknown_passes_and_keys_with_the_file_name(tmp_path):
    from edgegnn.errors import ConfigError

    cases = {"unknown_pass.yaml": ("passes:\n  - {pass: distill}\n", "passes[0].pass='distill'"),
             "unknown_key.yaml": ("passes:\n  - {pass: quantize, precison: int8}\n",
                                  "precison='int8' is invalid: unknown key"),
             "bad_type.yaml": ("passes:\n  - {pass: low_rank, rank: big}\n", "rank='big'"),
             "top_level.yaml": ("recipe: []\n", "recipe=[] is invalid: unknown key")}
    for name, (text, fragment) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as error:
            load_recipe(path)
        assert str(path) in str(error.value) and fragment in str(error.value), str(error.value)


def test_passes_that_need_calibration_say_so(edge):
    from edgegnn.errors import ConfigError

    for config in (PruneConfig(method="items"), LowRankConfig(rank=4, finetune_steps=3), QuantizeConfig(),
                   QuantizeConfig(precision="mixed", activations=False), ProductQuantizeConfig(subvectors=4),
                   ProductQuantizeConfig(subvectors=4, popularity_power=0.0, finetune_steps=2)):
        with pytest.raises(ConfigError, match="calibration"):
            compress(edge, config)
    assert compress(edge, QuantizeConfig(activations=False)).activation_scales == {}
