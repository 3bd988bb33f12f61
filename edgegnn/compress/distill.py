"""Distillation of low-rank factors: recover the Recall a post-hoc SVD costs (server side, torch).

Teacher: the model before the low-rank pass, run with the device arithmetic (numpy), on
the calibration users' histories. Student: the same model whose named tables are products
of trainable factors (shared factors stay shared). For each calibration user u, with
scores t_u (teacher) and s_u (student) over the catalog, history items excluded (the
device never recommends them) and a per-user temperature τ_u = ½·std(t_u):

    loss = mean_u KL( softmax(t_u / τ_u) ‖ softmax(s_u / τ_u) )

A listwise loss: it spends the factors' capacity on ordering the items near the top of
each user's list, which is what Recall@K sees; matching raw scores (MSE) was measured to
hurt Recall instead. Adam, `steps` steps, users in fixed minibatches (deterministic).
Only the factors train; every other tensor is a constant at its stored (dequantized) value.
"""

from __future__ import annotations

import logging

import numpy as np

from edgegnn.compress.calibration import Calibration
from edgegnn.compress.tensor_ops import map_leaves
from edgegnn.edge_model import EdgeModel
from edgegnn.metrics import top_k
from edgegnn.tensors import DenseTensor, LowRankTensor

log = logging.getLogger(__name__)

#: Scores held at once per step (bounds memory to a few hundred MB on big catalogs).
_SCORES_PER_STEP = 2 ** 23


def distill_factors(*, teacher: EdgeModel, student: EdgeModel, names: tuple[str, ...], steps: int,
                    lr: float, calibration: Calibration) -> EdgeModel:
    """`student` with the factors of its `names` tensors distilled towards `teacher` (same item rows)."""
    import torch

    histories, base = calibration.for_model(teacher)
    target = _masked(_device_scores(teacher, histories, base), histories)
    factors = _factor_leaves(student, names)
    params = {key: torch.tensor(leaf.to_dense(), requires_grad=True) for key, leaf in factors.items()}
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
    trained = {key: DenseTensor(p.detach().numpy().astype(np.float32)) for key, p in params.items()}
    memo: dict = {}
    out = student.with_tensors(None, **{n: map_leaves(student.tensors[n], lambda leaf: trained[id(leaf)], memo)
                                        for n in names})
    log.info("low-rank distillation, %d steps on %d users: KL %.4f -> %.4f, top-20 agreement %.3f -> %.3f",
             steps, len(histories), first, last, _agreement(student, teacher, histories, base),
             _agreement(out, teacher, histories, base))
    return out


def _factor_leaves(student: EdgeModel, names: tuple[str, ...]) -> dict[int, DenseTensor]:
    """id -> leaf for the distinct factors of the named (low-rank) tensors."""
    leaves: dict[int, DenseTensor] = {}
    for name in names:
        tensor = student.tensors[name]
        for leaf in (tensor.left, tensor.right):
            leaves.setdefault(id(leaf), leaf)
    return leaves


def _batches(num_users: int, num_items: int) -> list[np.ndarray]:
    size = max(1, min(num_users, _SCORES_PER_STEP // max(num_items, 1)))
    order = np.random.default_rng(0).permutation(num_users)
    return [np.sort(order[i:i + size]) for i in range(0, num_users, size)]


def _device_scores(edge: EdgeModel, histories, base) -> np.ndarray:
    return edge.score(edge.encode(histories, base)).astype(np.float32)


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
    """The EdgeModel's float math in torch, named tables as products of trainable factors."""

    def __init__(self, edge: EdgeModel, names: tuple[str, ...], params: dict):
        import torch

        self.edge, self.names, self.params = edge, names, params
        self.const = {n: torch.from_numpy(t.to_dense().astype(np.float32))
                      for n, t in edge.tensors.items() if n not in names}

    def dense(self, name: str):
        if name not in self.names:
            return self.const[name]
        tensor: LowRankTensor = self.edge.tensors[name]
        return self.params[id(tensor.left)] @ self.params[id(tensor.right)].T

    def aggregation(self, histories):
        """Sparse [b, I]: 1/sqrt(n) (LightGCN) or 1/n (SAGE mean) at each history item."""
        import torch

        lengths = np.array([len(h) for h in histories])
        rows = np.repeat(np.arange(len(histories)), lengths)
        norm = 1.0 / (np.sqrt(lengths) if self.edge.kind == "lightgcn" else lengths)
        values = np.repeat(norm, lengths).astype(np.float32)
        index = torch.from_numpy(np.vstack([rows, np.concatenate(histories)]).astype(np.int64))
        return torch.sparse_coo_tensor(index, torch.from_numpy(values),
                                       (len(histories), self.edge.num_items), check_invariants=True).coalesce()

    def scores(self, aggregation, base):
        import torch

        if self.edge.kind == "lightgcn":
            user = torch.sparse.mm(aggregation, self.dense("message"))
            if base is not None:
                if "base_projection" in self.const:
                    base = base @ self.const["base_projection"]
                user = user + float(self.edge.params["a0"]) * base
        else:
            ego_mean = torch.sparse.mm(aggregation, self.dense("ego"))
            hidden_mean = torch.sparse.mm(aggregation, self.dense("hidden"))
            if base is None:
                base = torch.zeros_like(ego_mean)
            h1 = torch.relu(base @ self.dense("w1_self").T + ego_mean @ self.dense("w1_neigh").T + self.dense("b1"))
            user = h1 @ self.dense("w2_self").T + hidden_mean @ self.dense("w2_neigh").T + self.dense("b2")
        return user @ self.dense("item").T
