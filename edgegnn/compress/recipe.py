"""Recipes: an ordered list of pass configs, as YAML.

    passes:
      - {pass: low_rank, rank: 32, finetune_steps: 200}
      - {pass: quantize, precision: int8}

Fields left out take the config's defaults; an unknown pass, key or value is a ConfigError
naming the file. `save_recipe` writes every field (a saved recipe does not depend on
defaults that may change), atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from edgegnn.compress.configs import PassConfig, config_from_entry
from edgegnn.configs import load_yaml
from edgegnn.errors import ConfigError


def configs_from_entries(entries: Any, *, source: str | None = None) -> list[PassConfig]:
    """Configs from a list of `{pass: name, **fields}` (e.g. `EdgeModel.recipe`)."""
    if not isinstance(entries, (list, tuple)):
        raise ConfigError("passes", entries, "expected a list of passes like [{pass: quantize}]", source=source)
    return [config_from_entry(entry, where=f"passes[{i}]", source=source) for i, entry in enumerate(entries)]


def load_recipe(path: str | Path) -> list[PassConfig]:
    """The configs of a recipe file."""
    data = load_yaml(path)
    unknown = sorted(set(data) - {"passes"})
    if unknown:
        raise ConfigError(unknown[0], data[unknown[0]], "unknown key; allowed: passes", source=str(path))
    if "passes" not in data:
        raise ConfigError("passes", None, "a recipe needs a 'passes' list", source=str(path))
    return configs_from_entries(data["passes"], source=str(path))


def recipe_yaml(configs: Iterable[PassConfig]) -> str:
    entries = [config.recipe_entry() for config in configs]
    return yaml.safe_dump({"passes": entries}, sort_keys=False, default_flow_style=False)


def save_recipe(configs: Sequence[PassConfig], path: str | Path) -> Path:
    """Write the recipe YAML atomically (temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(recipe_yaml(configs))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a recipe is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
