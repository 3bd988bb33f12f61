"""Graph filters on the device: GF-CF's two parts, from the history alone (Shen et al., CIKM 2021).

Fitted on the server without training (`edgegnn.models.graph_filter`); a user is scored from
the items of the history, with no user parameters, so a new user is served from the first click:
    e_u = Σ_{h∈history} message[h]                                   [B, k]
    s   = e_u · itemᵀ  +  Σ_{h∈history} Σ_{j<N} weight[h, j] · 1[neighbor_items[h, j]]   [B, I]
The first term is the low-pass filter α r_u D_I^-½ V_k V_kᵀ D_I^½ (two per-item tables, which
the compression passes treat like any kind's); the second is the linear filter r_u · P̃, with
each item's N strongest neighbours in P̃ (`neighbor_items`, uint16 ids where the catalog fits,
else int32; `neighbor_weights` [I, N], float or per-row int8), scattered into the scores.

Tables: `message` [I, k] (gathered; stored as diag(s) · item, see `fold`), `item` [I, k]
(scored); optionally `neighbor_items`,
`neighbor_weights` [I, N] (no item-item part without them).
"""

from __future__ import annotations

import numpy as np

NAME = "graph-filter"
TABLES = ("message", "item")
HISTORY_TABLES = ("message",)
WEIGHTS = ()
ACTIVATIONS = ()
USER_BASE = False          # users have no parameters
NEIGHBORS = ("neighbor_items", "neighbor_weights")
TRAINED = False            # fitted in closed form: `fit`, no epochs


def encode(ops, params):
    """e_u [B, k] = Σ_h message[h] (the low-pass part, α folded into `message`)."""
    return ops.history_pool("message", "sum")


def item_scores(ops, params):
    """The history's neighbour lists scattered into item scores [B, I], or None without them."""
    if not ops.has("neighbor_items"):
        return None
    return ops.neighbor_scores("neighbor_items", "neighbor_weights")


def base_dim(tensors) -> int:
    """No e_u⁰: a graph filter has no per-user input (0)."""
    return 0


def neighbor_id_dtype(num_items: int) -> np.dtype:
    """uint16 ids where every row index fits (up to 65,536 items), else int32."""
    return np.dtype(np.uint16) if num_items <= 1 << 16 else np.dtype(np.int32)


def fold(model, graph, item_ids):
    """The EdgeModel of a fitted `edgegnn.models.graph_filter` module (its buffers, as they are)."""
    from edgegnn.edge_model import EdgeModel
    from edgegnn.tensors import DenseTensor, RowScaledTensor

    tables = model.tables()
    item = DenseTensor(tables.item.astype(np.float32))
    scale = _row_scale(tables)
    if scale is not None:      # GF-CF: message = diag(s) · item, one table
        tensors = {"message": RowScaledTensor(item, DenseTensor(scale)), "item": item}
    else:
        tensors = {"message": DenseTensor(tables.message.astype(np.float32)), "item": item}
    if tables.neighbor_items.shape[1]:
        ids = tables.neighbor_items.astype(neighbor_id_dtype(len(item_ids)))
        tensors.update(neighbor_items=DenseTensor(ids),
                       neighbor_weights=DenseTensor(tables.neighbor_weights.astype(np.float32)))
    return EdgeModel(kind=NAME, tensors=tensors, item_ids=np.asarray(item_ids), params={})


def _row_scale(tables) -> np.ndarray | None:
    """s [I] with message = diag(s) · item, if the tables are so (GF-CF: α D_I^-½ V = (α / d_i) ·
    D_I^½ V), else None (ChebyCF weighs the columns). Then the device model stores one table and
    a scale per row (half the bytes; every pass keeps the sharing). s is read back from the
    tables (message_i · item_i / |item_i|², 0 for an unseen item) and checked against them."""
    item, message = tables.item.astype(np.float64), tables.message.astype(np.float64)
    norm = np.einsum("ij,ij->i", item, item)
    scale = np.divide(np.einsum("ij,ij->i", message, item), norm, out=np.zeros_like(norm), where=norm > 0)
    if not np.allclose(scale[:, None] * item, message, rtol=1e-4, atol=1e-6 * np.abs(message).max()):
        return None
    return scale.astype(np.float32)


def fit(config, train_csr, seed: int):
    """The fitted module for `config` on the training matrix CSR [U, I] (closed form, no epochs)."""
    from edgegnn.models.graph_filter import build_module, fit_graph_filter

    module = build_module(config, *train_csr.shape)
    module.load_tables(fit_graph_filter(config, train_csr, seed=seed))
    return module


def build_model(config, num_users: int, num_items: int):
    """The module that holds a fitted filter's arrays (`edgegnn.models.graph_filter`)."""
    from edgegnn.models.graph_filter import build_module

    return build_module(config, num_users, num_items)
