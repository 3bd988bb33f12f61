"""Checkpoints: one file that holds everything needed to evaluate, fold or export a model.

Contents (a dict saved with `torch.save`, loaded with `weights_only=True`, so loading a
file never runs code from it):
    format, format_version   -- "edgegnn-checkpoint", 1
    card                     -- the model card (architecture + training settings) as a dict
    state_dict               -- the model's weights
    user_ids, item_ids       -- raw ids, index order (the id maps)
    train_users, train_items -- int32 [|R|] training pairs: the graph the model propagates
                                over, needed to fold it (item degrees, layer embeddings)
    metrics                  -- final metrics (e.g. {"test": {...}, "valid": {...}})
    data                     -- the training split's DataRecord (source, reader and split options,
                                files' sha256), or None (built in code, or before edgegnn 0.2)
    history                  -- the training curve
    versions                 -- library versions that produced it
Written atomically: a temp file in the same directory, then `os.replace`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgegnn import __version__
from edgegnn.data.interactions import Interactions
from edgegnn.data.provenance import DataRecord
from edgegnn.errors import CheckpointError, EdgeGNNError
from edgegnn.models import ModelCard, build_model
from edgegnn.models.graph import BipartiteGraph

FORMAT = "edgegnn-checkpoint"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import torch_geometric

    return {"edgegnn": __version__, "torch": str(torch.__version__),
            "torch_geometric": str(torch_geometric.__version__), "numpy": str(np.__version__)}


@dataclass(eq=False)
class Checkpoint:
    """A trained recommender with its card, id maps and training graph."""

    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    train: Interactions
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=library_versions)
    data: DataRecord | None = None

    def build(self):
        """The torch model with these weights, plus its training graph."""
        model = build_model(self.card.model, self.train.num_users, self.train.num_items)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model, BipartiteGraph.from_interactions(self.train)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "card": self.card.to_dict(),
            "state_dict": self.state_dict,
            "user_ids": [str(x) for x in self.train.user_ids],
            "item_ids": [str(x) for x in self.train.item_ids],
            "train_users": torch.from_numpy(self.train.users.astype(np.int32)),
            "train_items": torch.from_numpy(self.train.items.astype(np.int32)),
            "metrics": self.metrics,
            "history": self.history,
            "versions": self.versions,
            "data": None if self.data is None else self.data.to_dict(),
        }


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write atomically; a crash leaves either the old file or none, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(checkpoint.to_payload(), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a missing, corrupt or foreign file is a `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable model file ({type(exc).__name__})",
                              hint="was it written by `edgegnn train`?") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgegnn checkpoint (no '{FORMAT}' header)",
                              hint="to import PyTorch Geometric LightGCN weights, use `edgegnn import`")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than "
                              f"this edgegnn supports ({FORMAT_VERSION})", hint="upgrade edgegnn")
    try:
        card = ModelCard.from_dict(payload["card"], source=str(path))
        train = Interactions(
            users=payload["train_users"].numpy().astype(np.int64),
            items=payload["train_items"].numpy().astype(np.int64),
            user_ids=np.asarray(payload["user_ids"], dtype=str),
            item_ids=np.asarray(payload["item_ids"], dtype=str),
        )
        checkpoint = Checkpoint(card=card, state_dict=payload["state_dict"], train=train,
                                metrics=payload.get("metrics", {}), history=payload.get("history", []),
                                versions=payload.get("versions", {}), data=DataRecord.from_dict(payload.get("data")))
        checkpoint.build()  # proves the weights fit the architecture
    except EdgeGNNError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})".split("\n")[0]) from None
    return checkpoint


def history_as_dicts(history) -> list[dict[str, Any]]:
    return [asdict(record) for record in history]


def import_pyg_lightgcn(state_path: str | Path, split) -> Checkpoint:
    """A checkpoint from a `torch_geometric.nn.models.LightGCN` state dict trained elsewhere.

    The state dict must index users 0..U-1 then items U..U+I-1 in the split's id space
    (PyG's own LightGCN example uses this layout). Test metrics are measured on import.
    """
    from edgegnn.metrics import evaluate_embeddings
    from edgegnn.models import LightGCNConfig
    from edgegnn.train.trainer import model_embeddings

    state_path = Path(state_path)
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{state_path}: not a readable state dict ({type(exc).__name__})") from None
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or "embedding.weight" not in state or "alpha" not in state:
        raise CheckpointError(f"{state_path}: not a PyG LightGCN state dict "
                              "(expected keys 'embedding.weight' and 'alpha')")
    weight, alpha = state["embedding.weight"], state["alpha"]
    expected = split.num_users + split.num_items
    if weight.ndim != 2 or weight.shape[0] != expected:
        raise CheckpointError(f"{state_path}: embedding has {weight.shape[0]} rows but the data has "
                              f"{split.num_users} users + {split.num_items} items = {expected}")
    config = LightGCNConfig(embedding_dim=int(weight.shape[1]), num_layers=int(alpha.numel()) - 1)
    card = ModelCard(name="lightgcn-imported", model=config,
                     description=f"imported from PyTorch Geometric state dict {state_path.name}")
    model = build_model(config, split.num_users, split.num_items)
    model.load_pyg_state_dict({"embedding.weight": weight.float(), "alpha": alpha.float()})
    graph = BipartiteGraph.from_interactions(split.train)
    user_emb, item_emb = model_embeddings(model, graph)
    metrics = {"test": evaluate_embeddings(user_emb, item_emb, split.train.to_csr(), split.test.to_csr())}
    return Checkpoint(card=card, state_dict={k: v.clone() for k, v in model.state_dict().items()},
                      train=split.train, metrics=metrics, data=split.record)
