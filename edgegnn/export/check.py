"""`check_target`: does this model fit this target? Answered before any heavy work.

Plans the graph (op list and tensor sizes; no table is copied or serialized) and checks:
    precision   the model's (fp32, or int8 when any tensor is integer-coded) or the one asked
                for is among the target's precisions;
    ops         every op the graph needs is in the target's float_ops or int8_ops (by whether
                the op reads an int8 tensor);
    memory      the estimated memory fits the target's memory_budget.
The memory estimate, in bytes, is deliberately simple and on the safe side:
    2 x constant bytes (the runtime reads the file and builds its tensors or prepacked
    weights: measured peak at load 1.5-2x the weights, benchmarks/bench_export_memory.py),
    + 1 x the bytes of weights XNNPACK repacks (litert with the xnnpack delegate; none with
      inverted lists, whose codes are gathered, not fully-connected weights),
    + 3 x 4 bytes x batch x scored items (the score row, its top-K, a temporary).
Each failure is one ExportError line naming the target, the op or precision, and what the
target allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgegnn.edge_model import EdgeModel
from edgegnn.errors import ExportError
from edgegnn.export.plan import GraphOptions, Scoring, base_dim, model_precision, scored_items
from edgegnn.retrieval import model_lists
from edgegnn.targets import Target

_QUERY_BATCH = 1


@dataclass(frozen=True)
class TargetCheck:
    """What the check found (also recorded in the manifest)."""

    precision: str
    ops: dict[str, list[str]]
    const_bytes: int
    estimated_memory: int
    int4_widened: list[str]
    scoring: Scoring


def graph_options(edge: EdgeModel, target: Target, *, variant: str = "history", top_k: int | None = None,
                  history_length: int | None = None, precision: str | None = None,
                  user_base: bool = True) -> GraphOptions:
    """The graph layout for `edge` on `target` (explicit arguments override the target's defaults)."""
    h = history_length if history_length is not None else target.history_length
    writer = target.format_record.writer_module()
    if variant == "user" and edge.has_item_scores:
        raise ExportError(f"variant 'user' takes a user embedding, but a {edge.kind} model also scores the "
                          "history's neighbour lists: export the history variant")
    user_base = user_base and base_dim(edge) > 0      # kinds with no per-user input (graph filters)
    return GraphOptions(variant=variant, top_k=top_k if top_k is not None else target.top_k,
                        history_length=h if writer.FIXED_HISTORY else None, batch=target.batch, user_base=user_base,
                        precision=resolve_precision(edge, precision), **writer.layout(target))


def resolve_precision(edge: EdgeModel, precision: str | None) -> str:
    """The precision the tables ship in: the model's own, or fp16 for an fp32 model on request."""
    own = model_precision(edge)
    if precision is None or precision == own:
        return own
    if precision == "fp16" and own == "fp32":
        return "fp16"
    if own == "int8":
        raise ExportError(f"precision={precision} asked for an int8 model; export it as int8 or export the "
                          "uncompressed model")
    raise ExportError(f"precision={precision} is not available for an fp32 model (fp32 or fp16; "
                      "int8 comes from `edgegnn compress --quantize int8`)")


def plan_graph(edge: EdgeModel, target: Target, options: GraphOptions):
    """The format's graph plan (ops, constant sizes), tables not materialized."""
    return target.format_record.writer_module().plan_graph(edge, options)


def check_target(edge: EdgeModel, target: Target, options: GraphOptions | None = None) -> TargetCheck:
    """Raise a one-line ExportError if `edge` cannot run on `target`; else what was checked."""
    options = options or graph_options(edge, target)
    if options.precision not in target.precisions:
        raise ExportError(f"target {target.name}: precision {options.precision} is not supported "
                          f"(supported: {', '.join(target.precisions)})",
                          hint="pick another target or compress the model differently")
    graph = plan_graph(edge, target, options)
    ops = graph.ops_used()
    for kind, allowed in (("float", target.float_ops), ("int8", target.int8_ops)):
        missing = [op for op in ops[kind] if op not in allowed]
        if missing:
            raise ExportError(f"target {target.name}: op {missing[0]} with {kind} inputs is not supported "
                              f"(supported {kind} ops: {', '.join(allowed) or 'none'})",
                              hint="pick another target or change the model's compression")
    const_bytes = graph.const_bytes()
    estimate = estimate_memory(edge, target, options, const_bytes)
    if estimate > target.memory_budget:
        raise ExportError(f"target {target.name}: the model needs about {estimate / 1e6:,.1f} MB in memory, over "
                          f"the budget of {target.memory_budget / 1e6:,.1f} MB",
                          hint="compress the model (edgegnn compress --size-budget ...) or pick a larger target")
    return TargetCheck(options.precision, ops, const_bytes, estimate, list(graph.int4_widened), graph.scoring)


def estimate_memory(edge: EdgeModel, target: Target, options: GraphOptions, const_bytes: int) -> int:
    """Bytes the runtime is expected to hold at its peak (see the module docstring)."""
    indexed = model_lists(edge.tensors, edge.params) is not None    # lists gather the codes: no FC weight
    repacked = const_bytes if target.runtime == "litert" and target.delegate == "xnnpack" and not indexed else 0
    batch = options.batch or _QUERY_BATCH
    return 2 * const_bytes + repacked + 3 * 4 * batch * scored_items(edge)
