"""Model kinds: one module each says, once, a kind's tables, its fold and its device math.

    from edgegnn.kinds import kind
    kind("lightgcn").encode(ops, params)      # the device math, against `edgegnn.kinds.ops`

A kind module defines:
    NAME                  the EdgeModel kind and the model card's `model.type`
    TABLES                required item-sized tables ("item" is the one scored)
    HISTORY_TABLES        the tables gathered by a user's history rows
    WEIGHTS               dense weights that run on the device (compression passes see them)
    ACTIVATIONS           internal activations with a static scale, in calibration order
                          ("user", e_u entering the scoring, is every kind's and applied by it)
    encode(ops, params)   e_u [B, d] from the history (and e_u⁰), against `ops.DeviceOps`
    item_scores(ops, params)  optional: a term [B, I] added to e_u · itemᵀ (graph filters'
                          neighbour lists), or None
    NEIGHBORS             optional: the tensors item_scores reads (ids, weights [I, N])
    TRAINED               optional, True by default; False: fitted in closed form by
                          `fit(config, train_csr, seed)` (no epochs, no e_u⁰)
    USER_BASE             optional, True by default; False: the kind has no per-user input
                          e_u⁰ (users have no parameters: graph filters, graph attention)
    base_dim(tensors)     the width of the e_u⁰ input
    fold(model, graph, item_ids)        the EdgeModel of a trained torch model
    build_model(config, users, items)   the torch module that trains it
Adding a kind: its module, its tests, and a line in `KINDS` (and a card type in
`edgegnn.models.card.MODEL_TYPES` if it trains from a card).
"""

from __future__ import annotations

from types import ModuleType

from edgegnn.errors import ConfigError
from edgegnn.kinds import gat, graph_filter, lightgcn, sage

KINDS: dict[str, ModuleType] = {module.NAME: module for module in (lightgcn, sage, gat, graph_filter)}


def kind(name: str) -> ModuleType:
    """The kind module named `name` (a ConfigError naming the known kinds otherwise)."""
    if name not in KINDS:
        raise ConfigError("kind", name, f"allowed: {', '.join(KINDS)}")
    return KINDS[name]


def item_scores(name: str, ops, params):
    """The kind's extra score term [B, I] on `ops` (None for kinds that score e_u · itemᵀ alone)."""
    term = getattr(kind(name), "item_scores", None)
    return None if term is None else term(ops, params)


def neighbor_tensors(name: str) -> tuple[str, ...]:
    """The tensors of a kind's neighbour lists (none for most kinds)."""
    return tuple(getattr(kind(name), "NEIGHBORS", ()))


def has_user_base(name: str) -> bool:
    """Whether the kind's users have an e_u⁰ (per-user parameters the device may take as input)."""
    return bool(getattr(kind(name), "USER_BASE", True))


def is_trained(name: str) -> bool:
    """Whether a kind trains by epochs (True) or is fitted in closed form (False)."""
    return bool(getattr(kind(name), "TRAINED", True))
