"""The training state on disk: torch.distributed.checkpoint (DCP) shards, and the gathered checkpoint.

A DCP checkpoint is a directory `epoch-NNNNNN/` under the job's checkpoint directory:
    .metadata, __R_0.distcp   DCP's files: each rank writes its own rows
    progress.json             the loop's state (epoch, curve, best epoch, ...) and what the job
                              was (world size, partition digest, card, data), written by rank 0
Tables are saved as two entries, the users' rows and the items' rows, each a DTensor sharded
by rank over [W · block_rows, d] (each rank's block padded to the largest). The same split
holds the optimizer's per-row state (Adam's moments, Adagrad's sums, momentum buffers) and the
best epoch's rows; replicated parameters (GraphSAGE's layers) and their optimizer state are
whole entries, written once. A directory is written as `.epoch-NNNNNN.partial` and renamed once every
rank has written: a job killed mid-write leaves no checkpoint that looks complete. Renumbered
users and items are specific to a world size; a job of another world size reads the whole
entries on every rank and keeps its own rows (`ReshardingLayout`), so a job killed at W ranks
resumes at any other W' (the partitions at W are recomputed from the same data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard

from edgegnn.distributed.context import DistContext, DistributedError, first_difference
from edgegnn.distributed.halo import all_rows
from edgegnn.distributed.partition import BlockPartition
from edgegnn.train.trainer import EpochRecord, LoopState

log = logging.getLogger(__name__)

PREFIX = "epoch-"
KEEP = 2           # complete checkpoints kept; older ones are removed after a newer one lands


def loop_to_dict(loop: LoopState) -> dict:
    return {**asdict(loop), "history": [asdict(record) for record in loop.history]}


def loop_from_dict(data: dict) -> LoopState:
    return LoopState(**{**data, "history": [EpochRecord(**record) for record in data["history"]]})


def partition_digest(*partitions: BlockPartition) -> str:
    digest = hashlib.sha256()
    for partition in partitions:
        digest.update(partition.order.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


class RowLayout:
    """How a [U_r + I_r, d] table of one rank is split into DCP entries (module docstring); a
    model without user rows (graph attention: users have no ego embedding) has [I_r, d]."""

    def __init__(self, context: DistContext, users: BlockPartition, items: BlockPartition, *,
                 user_rows: bool = True):
        self.context, self.users, self.items, self.user_rows = context, users, items, user_rows
        self.mesh = init_device_mesh("cpu", (context.world_size,))
        self.local_users = users.size_of(context.rank) if user_rows else 0

    def _sharded(self, rows: torch.Tensor, partition: BlockPartition) -> DTensor:
        """`rows` [N_r, d] padded to the largest block, as rank r's shard of [W · block_rows, d]."""
        block, width = partition.block_rows, rows.shape[1]
        padded = rows.new_zeros((block, width))
        padded[:len(rows)] = rows.detach()
        shape = torch.Size([block * self.context.world_size, width])
        return DTensor.from_local(padded, self.mesh, [Shard(0)], run_check=False, shape=shape, stride=(width, 1))

    def split(self, name: str, table: torch.Tensor) -> dict[str, torch.Tensor]:
        entries = {f"{name}.items": self._sharded(table[self.local_users:], self.items)}
        if self.user_rows:
            entries[f"{name}.users"] = self._sharded(table[:self.local_users], self.users)
        return entries

    def join(self, name: str, entries: dict[str, torch.Tensor]) -> torch.Tensor:
        items = entries[f"{name}.items"].to_local()[:self.items.size_of(self.context.rank)]
        if not self.user_rows:
            return items
        return torch.cat([entries[f"{name}.users"].to_local()[:self.local_users], items])


def padded_rows(partition: BlockPartition, original: np.ndarray) -> torch.Tensor:
    """int64 [n]: where the rows of original indices `original` lie in the [W · block_rows, d]
    padded layout of `partition`."""
    owner = partition.owners()[original]
    position = partition.renumbered()[original] - partition.bounds[owner]
    return torch.from_numpy(owner * partition.block_rows + position)


class ReshardingLayout:
    """Reads the entries a job of another world size wrote (partitions `users`, `items` of its
    world size) into this rank's table of `target`: every rank reads the whole entries (DCP
    reads a sharded entry into a plain tensor) and keeps its own rows, so a resume briefly holds
    the whole table and optimizer state on each rank."""

    def __init__(self, target: RowLayout, users: BlockPartition, items: BlockPartition):
        self.target, self.users, self.items = target, users, items
        rank = target.context.rank
        self.user_rows = padded_rows(users, target.users.rows_of(rank)) if target.user_rows else None
        self.item_rows = padded_rows(items, target.items.rows_of(rank))

    def split(self, name: str, table: torch.Tensor) -> dict[str, torch.Tensor]:
        width, world = table.shape[1], self.users.world_size
        entries = {f"{name}.items": table.new_zeros((self.items.block_rows * world, width))}
        if self.user_rows is not None:
            entries[f"{name}.users"] = table.new_zeros((self.users.block_rows * world, width))
        return entries

    def join(self, name: str, entries: dict[str, torch.Tensor]) -> torch.Tensor:
        items = entries[f"{name}.items"][self.item_rows]
        return items if self.user_rows is None else torch.cat([entries[f"{name}.users"][self.user_rows], items])


def parameters_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter of a rank's model, by name (`table` is its rows)."""
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def restore_parameters(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(saved[name])


def _spec(value: torch.Tensor, rows: bool) -> dict:
    return {"rows": rows, "dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape)}


def _entries(layout, prefix: str, tensors: dict[str, torch.Tensor], rows: set[str]) -> dict[str, torch.Tensor]:
    """DCP entries of named tensors: those named in `rows` split by rows (`layout`), the rest
    whole (every rank holds the same: DCP writes one copy)."""
    entries = {}
    for name, value in tensors.items():
        if name in rows:
            entries.update(layout.split(f"{prefix}.{name}", value))
        else:
            entries[f"{prefix}.{name}"] = value.detach().clone()
    return entries


def _joined(layout, prefix: str, names, entries: dict, rows: set[str]) -> dict[str, torch.Tensor]:
    return {name: layout.join(f"{prefix}.{name}", entries) if name in rows else entries[f"{prefix}.{name}"]
            for name in names}


def _optimizer_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, set[str]]:
    """(the optimizer's per-parameter state as "parameter/key" -> tensor, the names of those
    with one row per table row)."""
    names = [name for name, _ in model.named_parameters()]
    tensors, rows = {}, set()
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                name = f"{names[index]}/{key}"
                tensors[name] = value
                if names[index] == "table" and value.shape == model.table.shape:
                    rows.add(name)
    return tensors, rows


def save_state(directory: Path, layout: RowLayout, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               generator: torch.Generator, loop: LoopState, best: dict[str, torch.Tensor] | None,
               job: dict) -> Path:
    """Write the DCP checkpoint of epoch `loop.epoch` (every rank calls this); its final path."""
    context = layout.context
    final = directory / f"{PREFIX}{loop.epoch:06d}"
    partial = directory / f".{final.name}.partial"
    if context.is_writer:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    dist.barrier()
    entries = _entries(layout, "param", parameters_snapshot(model), {"table"})
    if best is not None:
        entries.update(_entries(layout, "best", best, {"table"}))
    moments, rows = _optimizer_tensors(model, optimizer)
    entries.update(_entries(layout, "optimizer", moments, rows))
    entries["generator"] = generator.get_state()
    dcp.save(entries, checkpoint_id=str(partial))
    if context.is_writer:
        described = {name: _spec(value, name in rows) for name, value in moments.items()}
        progress = {"loop": loop_to_dict(loop), "has_best": best is not None, "optimizer": described, "job": job}
        (partial / "progress.json").write_text(json.dumps(progress, indent=1))
    dist.barrier()
    if context.is_writer:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        for old in complete_checkpoints(directory)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    log.info("checkpointed epoch %d to %s", loop.epoch, final)
    return final


def complete_checkpoints(directory: Path) -> list[Path]:
    """The complete DCP checkpoints under `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "progress.json").is_file())


def read_progress(path: Path) -> dict:
    try:
        return json.loads((path / "progress.json").read_text())
    except (OSError, ValueError) as exc:
        raise DistributedError(f"{path}: not a readable edgegnn training checkpoint ({type(exc).__name__})") from None


def check_resumable(path: Path, progress: dict, job: dict) -> int:
    """The world size that wrote the checkpoint at `path`; a DistributedError unless it was
    written by this job's card and data (and, at this world size, this partition)."""
    written = progress.get("job", {})
    for key, what in (("card", "model card"), ("data", "data")):
        if written.get(key) != job.get(key):
            differs = first_difference(job.get(key), written.get(key), f"{key}.", there="there")
            raise DistributedError(f"{path}: written by a job with another {what} ({differs})",
                                   hint="resume with the command that wrote it")
    world = written.get("world_size")
    if not isinstance(world, int) or world < 1:
        raise DistributedError(f"{path}: progress.json names no world size (world_size={world!r})")
    if world == job["world_size"] and written.get("partition") != job["partition"]:
        raise DistributedError(f"{path}: written by a job with another partition of users and items "
                               f"({written.get('partition')} there, {job['partition']} here)",
                               hint="resume with the command that wrote it")
    return world


def load_state(path: Path, layout: RowLayout | ReshardingLayout, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, generator: torch.Generator
               ) -> tuple[LoopState, dict[str, torch.Tensor] | None]:
    """Read the DCP checkpoint at `path` into `model`, `optimizer` and `generator`; (loop state,
    the best epoch's parameters or None). `layout` is this job's, or a ReshardingLayout from the
    writer's."""
    progress = read_progress(path)
    loop = loop_from_dict(progress["loop"])
    has_best = bool(progress.get("has_best"))
    params = {name: torch.zeros_like(param) for name, param in model.named_parameters()}
    described = progress["optimizer"]
    moments = {name: torch.zeros(model.table.shape if spec["rows"] else spec["shape"],   # rows: this rank's
                                 dtype=getattr(torch, spec["dtype"])) for name, spec in described.items()}
    rows = {name for name, spec in described.items() if spec["rows"]}
    entries = {**_entries(layout, "param", params, {"table"}), **_entries(layout, "optimizer", moments, rows)}
    if has_best:
        entries.update(_entries(layout, "best", params, {"table"}))
    entries["generator"] = generator.get_state()
    dcp.load(entries, checkpoint_id=str(path))
    restore_parameters(model, _joined(layout, "param", params, entries, {"table"}))
    generator.set_state(entries["generator"])
    loaded = _joined(layout, "optimizer", moments, entries, rows)
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    state: dict[int, dict] = {}
    for name, value in loaded.items():
        parameter, key = name.split("/")
        state.setdefault(index[parameter], {})[key] = value
    if state:
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    best = _joined(layout, "best", params, entries, {"table"}) if has_best else None
    return loop, best


def gather_table(layout: RowLayout, table: torch.Tensor) -> torch.Tensor | None:
    """The whole [U + I, d] table ([I, d] without user rows) in the original order, on rank 0
    (None elsewhere)."""
    users = _gather_block(layout, table[:layout.local_users], layout.users) if layout.user_rows else None
    items = _gather_block(layout, table[layout.local_users:], layout.items)      # collectives: every rank
    if users is None:
        return items
    return torch.cat([users, items])


def _gather_block(layout: RowLayout, rows: torch.Tensor, partition: BlockPartition) -> torch.Tensor | None:
    """Every rank's `rows` [N_r, d] of `partition`, in original order on rank 0 (None elsewhere)."""
    renumbered = all_rows(rows.detach(), partition.bounds, layout.context)
    return renumbered[torch.from_numpy(partition.renumbered())] if layout.context.is_writer else None
