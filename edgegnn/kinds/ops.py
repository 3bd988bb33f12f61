"""The ops a model kind's device math is written against, and that every backend implements.

A model kind (`edgegnn.kinds`) states its device math once, as a function of an `ops` object:
the numpy simulation (`edgegnn.edge_model`), the error bounds of the CPU verification
(`edgegnn.export.verify`), the torch student of the distillation (`edgegnn.compress.distill`),
the ONNX writer and the TFLite writer each implement these ops over their own values (arrays,
(value, bound) pairs, tensors, graph nodes). None of them re-derives a kind's math.

Values are the backend's own; table names are the EdgeModel's tensors, read the way they are
stored (int8 rows dequantized on gather, low-rank tables through their factors, ...). B users,
H history items each, C columns:

    history_pool(table, norm)   Σ_{h ∈ history} table[h] · w, w = 1/sqrt(n) ("sqrt"), 1/n ("mean")
                                or 1 ("sum"), n = |history|             [B, C]
    history_attention(table)    Σ_{h ∈ history} α_h · table[h, :C], α = softmax over the history
                                of the last column, table[h, C] (a per-item attention logit)  [B, C]
    user_base()                 e_u⁰ [B, d⁰], or None (new users; no such input)
    has(name)                   whether the model holds an optional tensor
    matmul(x, table)            x [B, R] @ table [R, C]                 [B, C]
    matmul_t(x, table)          x [B, C] @ tableᵀ, table [R, C] (a weight [out, in]) [B, R]
    add(a, b), scale(x, c), relu(x)
    bias(name)                  a [C] vector that `add` broadcasts over B
    activation(name, x)         the model's static quantization of an internal activation
                                (EdgeModel.quantize_activation), where the backend applies it
    neighbor_scores(ids, w)     Σ_{h ∈ history} Σ_j w[h, j] · onehot(ids[h, j])  [B, I]: each
                                history item's neighbour list (ids, weights [I, N]) scattered
                                into item scores (a kind's `item_scores` term)

The scoring that follows encode (e_u · itemᵀ, with the "user" activation) is each backend's own
(integer kernels, lookup tables, two-stage top-K) and the same for every kind; a kind's
`item_scores` term, if any, is added to it before the top-K.
`tests/kinds/test_ops.py` fails when a backend lacks an op a kind uses.
"""

from __future__ import annotations

from typing import Any, Protocol

OPS = ("history_pool", "history_attention", "user_base", "has", "matmul", "matmul_t", "add", "scale", "relu", "bias",
       "activation", "neighbor_scores")
POOL_NORMS = ("sqrt", "mean", "sum")


class DeviceOps(Protocol):
    def history_pool(self, table: str, norm: str) -> Any: ...

    def history_attention(self, table: str) -> Any: ...

    def user_base(self) -> Any | None: ...

    def has(self, name: str) -> bool: ...

    def matmul(self, x: Any, table: str) -> Any: ...

    def matmul_t(self, x: Any, table: str) -> Any: ...

    def add(self, a: Any, b: Any) -> Any: ...

    def scale(self, x: Any, factor: float) -> Any: ...

    def relu(self, x: Any) -> Any: ...

    def bias(self, name: str) -> Any: ...

    def activation(self, name: str, x: Any) -> Any: ...

    def neighbor_scores(self, ids: str, weights: str) -> Any: ...
