"""Distillation of compressed tensors: recover the Recall a post-hoc compression costs (server side, torch).

Teacher: the model before the pass, run with the device arithmetic (numpy), on the
calibration users' histories. Student: the same model, in which the `trainable` leaves of
the named tables are torch parameters and the rest of each table is rebuilt around them
with the same math as its stored form (shared leaves stay shared):
    DenseTensor            values train (the low-rank pass trains its factors);
    ProductQuantizedTensor codebooks train, codes stay fixed (the PQ pass trains these only):
                           x[r, m·D:(m+1)·D] = codebooks[m, codes[r, m]] (a gather, so
                           every row using codeword (m, k) sends its gradient to it);
    LowRankTensor          left @ rightᵀ;  RowScaledTensor  row_scale[:, None] · base;
    other leaves           constants at their stored (dequantized) values.
For each calibration user u, with scores t_u (teacher) and s_u (student) over the catalog,
history items excluded (the device never recommends them) and a per-user temperature
τ_u = ½·std(t_u):

    loss = mean_u KL( softmax(t_u / τ_u) ‖ softmax(s_u / τ_u) )

A listwise loss: it spends the factors' capacity on ordering the items near the top of
each user's list, which is what Recall@K sees; matching raw scores (MSE) was measured to
hurt Recall instead. Adam, `steps` steps, users in fixed minibatches (deterministic).
Trained values are stored back in each leaf's own dtype (float16 codebooks are rounded
after training).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.tensor_ops import map_leaves
from edgegnn.edge_model import EdgeModel
from edgegnn.kinds import item_scores, kind
from edgegnn.metrics import top_k
from edgegnn.tensors import DenseTensor, LowRankTensor, ProductQuantizedTensor, RowScaledTensor, Stored

log = logging.getLogger(__name__)

#: Scores held at once per step (bounds memory to a few hundred MB on big catalogs).
_SCORES_PER_STEP = 2 ** 23


def distill(*, teacher: EdgeModel, student: EdgeModel, names: tuple[str, ...], trainable: Callable[[Stored], bool],
            steps: int, lr: float, calibration: Calibration, label: str = "distillation") -> EdgeModel:
    """`student` with the `trainable` leaves of its `names` tensors distilled towards `teacher` (same item rows).

    Args:
        trainable: which leaves train (a DenseTensor's values, a ProductQuantizedTensor's
            codebooks); evaluated on every leaf `map_leaves` visits under the named tensors.
        label: what the log line calls this distillation.
    """
    import torch

    histories, base = calibration.for_model(teacher)
    target = _masked(_device_scores(teacher, histories, base), histories)
    leaves = _trainable_leaves(student, names, trainable)
    params = {key: torch.tensor(_trained_array(leaf), dtype=torch.float32, requires_grad=True)
              for key, leaf in leaves.items()}
    model = _TorchStudent(student, names, params)
    batches = _batches(len(histories), student.num_items)
    aggregation = [model.aggregation([histories[i] for i in b]) for b in batches]
    target_t = [torch.from_numpy(target[b]) for b in batches]
    tau = [_temperature(t) for t in target_t]
    base_t = [None if base is None else torch.from_numpy(np.asarray(base[b], np.float32)) for b in batches]
    masks = [t <= -1e8 for t in target_t]

    def loss_of(j: int):
        scores = model.scores(aggregation[j], base_t[j]).masked_fill(masks[j], -1e9)
        log_p = torch.log_softmax(target_t[j] / tau[j], dim=1)
        log_q = torch.log_softmax(scores / tau[j], dim=1)
        return torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="batchmean")

    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    with torch.no_grad():
        first = float(sum(loss_of(j) for j in range(len(batches))) / len(batches))
    for step in range(steps):
        optimizer.zero_grad()
        loss = loss_of(step % len(batches))
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        last = float(sum(loss_of(j) for j in range(len(batches))) / len(batches))
    trained = {key: _with_array(leaves[key], p.detach().numpy()) for key, p in params.items()}
    memo: dict = {}
    out = student.with_tensors(None, **{n: map_leaves(student.tensors[n], lambda leaf: trained.get(id(leaf), leaf),
                                                      memo) for n in names})
    log.info("%s, %d steps on %d users: KL %.4f -> %.4f, top-20 agreement %.3f -> %.3f", label,
             steps, len(histories), first, last, _agreement(student, teacher, histories, base),
             _agreement(out, teacher, histories, base))
    return out


def distill_factors(*, teacher: EdgeModel, student: EdgeModel, names: tuple[str, ...], steps: int,
                    lr: float, calibration: Calibration) -> EdgeModel:
    """Low-rank: every dense factor of the named (low-rank) tensors trains."""
    return distill(teacher=teacher, student=student, names=names, trainable=lambda leaf: isinstance(leaf, DenseTensor),
                   steps=steps, lr=lr, calibration=calibration, label="low-rank distillation")


def _trainable_leaves(student: EdgeModel, names: tuple[str, ...], trainable) -> dict[int, Stored]:
    """id -> leaf for the distinct trainable leaves under the named tensors."""
    leaves: dict[int, Stored] = {}

    def visit(leaf: Stored) -> Stored:
        if trainable(leaf):
            leaves.setdefault(id(leaf), leaf)
        return leaf

    memo: dict = {}
    for name in names:
        map_leaves(student.tensors[name], visit, memo)
    return leaves


def _trained_array(leaf: Stored) -> np.ndarray:
    """The float32 array that trains for `leaf`: codebooks of a PQ tensor, else the values."""
    if isinstance(leaf, ProductQuantizedTensor):
        return leaf.codebooks.astype(np.float32)
    if isinstance(leaf, DenseTensor):
        return leaf.values.astype(np.float32)
    raise TypeError(f"cannot train a {type(leaf).__name__}")


def _with_array(leaf: Stored, array: np.ndarray) -> Stored:
    """`leaf` with its trained array put back, in the leaf's own dtype."""
    if isinstance(leaf, ProductQuantizedTensor):
        return ProductQuantizedTensor(leaf.codes, array.astype(leaf.codebooks.dtype))
    return DenseTensor(array.astype(leaf.values.dtype))


def _batches(num_users: int, num_items: int) -> list[np.ndarray]:
    size = max(1, min(num_users, _SCORES_PER_STEP // max(num_items, 1)))
    order = np.random.default_rng(0).permutation(num_users)
    return [np.sort(order[i:i + size]) for i in range(0, num_users, size)]


def _device_scores(edge: EdgeModel, histories, base) -> np.ndarray:
    return edge.scores(histories, base).astype(np.float32)


def _masked(scores: np.ndarray, histories) -> np.ndarray:
    scores = scores.copy()
    for row, history in enumerate(histories):
        scores[row, history] = -1e9  # finite: softmax gives ~0 without inf - inf = nan
    return scores


def _temperature(target):
    """τ_u = ½ · std of the user's scores over the items the device may recommend, [b, 1]."""
    import torch

    valid = target > -1e8
    count = valid.sum(dim=1, keepdim=True).clamp(min=2)
    mean = torch.where(valid, target, 0.0).sum(dim=1, keepdim=True) / count
    var = (torch.where(valid, target - mean, 0.0) ** 2).sum(dim=1, keepdim=True) / (count - 1)
    return 0.5 * var.sqrt().clamp(min=1e-6)


def _agreement(edge: EdgeModel, teacher: EdgeModel, histories, base, k: int = 20) -> float:
    """Mean share of the teacher's top-k (history excluded) that `edge` also puts in its top-k."""
    mine = top_k(_masked(_device_scores(edge, histories, base), histories), k)
    theirs = top_k(_masked(_device_scores(teacher, histories, base), histories), k)
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(mine, theirs)]))


class _TorchStudent:
    """The EdgeModel's float math in torch, the named tables rebuilt around trainable leaves."""

    def __init__(self, edge: EdgeModel, names: tuple[str, ...], params: dict):
        import torch

        self.edge, self.names, self.params = edge, names, params
        self.const = {n: torch.from_numpy(t.to_dense().astype(np.float32))
                      for n, t in edge.tensors.items() if n not in names}

    def dense(self, name: str):
        if name not in self.names:
            return self.const[name]
        return self._rebuild(self.edge.tensors[name], {})

    def _rebuild(self, tensor: Stored, memo: dict):
        """float32 torch [R, C] of a stored tensor, trainable leaves as parameters (each built once)."""
        import torch

        key = id(tensor)
        if key in memo:
            return memo[key]
        if key in self.params and isinstance(tensor, ProductQuantizedTensor):
            m = tensor.subvectors
            codes = torch.from_numpy(tensor.codes.astype(np.int64))
            out = self.params[key][torch.arange(m)[None, :], codes].reshape(len(codes), -1)
        elif key in self.params:
            out = self.params[key]
        elif isinstance(tensor, LowRankTensor):
            out = self._rebuild(tensor.left, memo) @ self._rebuild(tensor.right, memo).T
        elif isinstance(tensor, RowScaledTensor):
            out = self._rebuild(tensor.row_scale, memo)[:, None] * self._rebuild(tensor.base, memo)
        else:
            out = torch.from_numpy(tensor.to_dense().astype(np.float32))
        memo[key] = out
        return out

    def aggregation(self, histories):
        """The histories as sparse [b, I] pooling matrices, one per norm ("sqrt": 1/sqrt(n), "mean":
        1/n, "sum": 1 at each history item), and as flat "index" / "segment" int64 [N] (the items,
        the row each belongs to: what an attention pools over), built once per minibatch."""
        import torch

        lengths = np.array([len(h) for h in histories])
        rows = np.repeat(np.arange(len(histories)), lengths)
        index = torch.from_numpy(np.vstack([rows, np.concatenate(histories)]).astype(np.int64))
        weights = {"sqrt": 1.0 / np.sqrt(lengths), "mean": 1.0 / lengths, "sum": np.ones(len(lengths))}
        pools = {norm: torch.sparse_coo_tensor(index, torch.from_numpy(np.repeat(w, lengths).astype(np.float32)),
                                               (len(histories), self.edge.num_items), check_invariants=True).coalesce()
                 for norm, w in weights.items()}
        return {**pools, "index": index[1], "segment": index[0]}

    def scores(self, aggregation, base):
        """[b, I]: the kind's device math (`edgegnn.kinds`) on `TorchOps`, then e_u · itemᵀ
        (plus the kind's item_scores term, if any)."""
        ops = TorchOps(self, aggregation, base)
        scores = kind(self.edge.kind).encode(ops, self.edge.params) @ self.dense("item").T
        term = item_scores(self.edge.kind, ops, self.edge.params)
        return scores if term is None else scores + term


class TorchOps:
    """The kinds' ops (`edgegnn.kinds.ops`) over torch tensors (float; the student's math).

    history_pool: a sparse [b, I] pooling matrix times the (rebuilt) table; activation:
    unchanged (the distillation trains in float, as the teacher's targets allow).
    """

    def __init__(self, student: _TorchStudent, aggregation: dict, base) -> None:
        self.student, self.aggregation, self.base = student, aggregation, base

    def history_pool(self, table: str, norm: str):
        import torch

        return torch.sparse.mm(self.aggregation[norm], self.student.dense(table))

    def history_attention(self, table: str):
        """Σ_h softmax(a)_h m_h over each history, through PyG's segment softmax."""
        from torch_geometric.utils import softmax

        index, segment = self.aggregation["index"], self.aggregation["segment"]
        batch = self.aggregation["sum"].shape[0]
        rows = self.student.dense(table)[index]                                            # [N, C + 1]
        weights = softmax(rows[:, -1], segment, num_nodes=batch)
        return rows.new_zeros(batch, rows.shape[1] - 1).index_add(0, segment, rows[:, :-1] * weights[:, None])

    def user_base(self):
        return self.base

    def has(self, name: str) -> bool:
        return name in self.student.edge.tensors

    def matmul(self, x, table: str):
        return x @ self.student.dense(table)

    def matmul_t(self, x, table: str):
        return x @ self.student.dense(table).T

    def add(self, a, b):
        return a + b

    def scale(self, x, factor: float):
        return x * float(factor)

    def relu(self, x):
        import torch

        return torch.relu(x)

    def bias(self, name: str):
        return self.student.dense(name)

    def activation(self, name: str, x):
        return x

    def neighbor_scores(self, ids: str, weights: str):
        """The "sum" pooling matrix [b, I] times the neighbour lists as a sparse [I, I] (their
        weights the student's, trainable if named)."""
        import torch

        neighbor_ids = torch.from_numpy(self.student.edge.tensors[ids].values.astype(np.int64))
        items, count = neighbor_ids.shape
        rows = torch.arange(items).repeat_interleave(count)
        lists = torch.sparse_coo_tensor(torch.stack([rows, neighbor_ids.reshape(-1)]),
                                        self.student.dense(weights).reshape(-1), (items, items))
        return torch.sparse.mm(self.aggregation["sum"], lists).to_dense()
