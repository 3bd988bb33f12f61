"""The process group, from `env://` only, and errors that every rank reports alike.

A launcher (torchrun, `srun torchrun`, a PyTorchJob) sets MASTER_ADDR, MASTER_PORT, RANK and
WORLD_SIZE; nothing else is read, so one command runs under all of them. A check that fails
on one rank only (its data file differs, its disk is full) must not leave the others waiting
in the next collective: `agreed` gathers every rank's outcome and raises the same one-line
`DistributedError` on all of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from edgegnn.errors import EdgeGNNError

log = logging.getLogger(__name__)

RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")
LAUNCH_HINT = ("start it with a launcher, e.g. "
               "torchrun --standalone --nproc_per_node 2 -m edgegnn train --distributed ...")

T = TypeVar("T")


class DistributedError(EdgeGNNError):
    """A distributed job that cannot go on: reported alike on every rank."""


class AgreedError(DistributedError):
    """A DistributedError every rank raised together (`agreed`, `check_same_on_every_rank`): all
    ranks are still there, so they can leave the process group together."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job.

    Attributes:
        rank: 0..world_size-1 (rank 0 writes the files).
        world_size: W, the number of ranks.
    """

    rank: int
    world_size: int

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def prefix(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def rendezvous_from_env(environ=os.environ) -> tuple[int, int]:
    """(rank, world size) from the launcher's variables; a DistributedError naming a missing or
    malformed one."""
    missing = [name for name in RENDEZVOUS_VARIABLES if not environ.get(name)]
    if missing:
        raise DistributedError(f"the rendezvous variable{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)} {'are' if len(missing) > 1 else 'is'} not set",
                               hint=LAUNCH_HINT)
    values = {}
    for name in ("RANK", "WORLD_SIZE", "MASTER_PORT"):
        try:
            values[name] = int(environ[name])
        except ValueError:
            raise DistributedError(f"the rendezvous variable {name}={environ[name]!r} is not an integer",
                                   hint=LAUNCH_HINT) from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} and WORLD_SIZE={world}: need WORLD_SIZE >= 1 and "
                               "0 <= RANK < WORLD_SIZE", hint=LAUNCH_HINT)
    return rank, world


def init_from_env(timeout_s: float = 600.0) -> DistContext:
    """Join the job's process group (gloo: the tables live on the CPU) by `env://`.

    `timeout_s` bounds how long a collective waits for a rank that hangs; a rank that dies
    closes its sockets and the others fail at once.
    """
    rank, world = rendezvous_from_env()
    if not dist.is_initialized():
        try:
            dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as error:       # the store or a peer unreachable, a port in use
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DistributedError(f"rank {rank} of {world} could not join the process group at "
                                   f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({first})",
                                   hint=LAUNCH_HINT) from None
    log.info("joined the process group as rank %d of %d", rank, world)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size())


def close(*, together: bool) -> None:
    """Leave the process group. `together` (every rank is still there: the job ended well, or
    failed alike on every rank): wait for every rank first, so that no rank closes its sockets
    while another's gloo threads still read them (gloo then aborts the process at exit)."""
    if not dist.is_initialized():
        return
    if together:
        try:
            dist.barrier()
        except RuntimeError:             # a rank already gone: there is no one left to wait for
            log.warning("a rank left before the job's last barrier")
    dist.destroy_process_group()


def agreed(context: DistContext, action: Callable[[], T]) -> T:
    """`action()` on every rank; if it raised an EdgeGNNError on any rank, the first such error
    (lowest rank) is raised on every rank, named by the rank it happened on."""
    failure = None
    result = None
    try:
        result = action()
    except EdgeGNNError as error:
        failure = (str(error), error.hint)
    outcomes: list = [None] * context.world_size
    dist.all_gather_object(outcomes, failure)
    for rank, outcome in enumerate(outcomes):
        if outcome is not None:
            message, hint = outcome
            raise AgreedError(f"rank {rank}: {message}" if context.world_size > 1 else message, hint=hint)
    return result


def check_same_on_every_rank(context: DistContext, what: str, value) -> None:
    """A DistributedError on every rank unless `value` (picklable) is equal on all of them."""
    values: list = [None] * context.world_size
    dist.all_gather_object(values, value)
    for rank, other in enumerate(values):
        if other != values[0]:
            raise AgreedError(f"rank {rank} was started with other {what} than rank 0: "
                                   f"{first_difference(other, values[0])}",
                                   hint="start every rank with the same data and options")


def first_difference(value, reference, path: str = "", *, there: str = "on rank 0") -> str:
    """'key.sub: VALUE here, REFERENCE on rank 0' (or `there`) for the first place two nested dicts differ."""
    if isinstance(value, dict) and isinstance(reference, dict):
        for key in sorted(set(value) | set(reference), key=str):
            if value.get(key) != reference.get(key):
                return first_difference(value.get(key), reference.get(key), f"{path}{key}.", there=there)
    return f"{path.rstrip('.') or 'value'}: {_shown(value)} here, {_shown(reference)} {there}"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class AllReduceSum(torch.autograd.Function):
    """y = Σ_ranks x (every rank gets y); the gradient is Σ_ranks dL_r/dy, again an all-reduce.

    Written here because torch.distributed.nn.functional.all_reduce, the public differentiable
    one, is deprecated, and the replacement it names (`_functional_collectives`) is private.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ over ranks of x, differentiable (`AllReduceSum`)."""
    return AllReduceSum.apply(x)


def sum_over_ranks(value: float) -> float:
    """Σ over ranks of a Python number (float64)."""
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total[0])


@contextmanager
def lost_rank(context: DistContext, checkpointing=None):
    """Turn a collective that failed because another rank is gone into one DistributedError line
    (with where to resume from); any other error propagates."""
    try:
        yield
    except RuntimeError as error:                  # gloo raises DistBackendError, or RuntimeError
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not isinstance(error, dist.DistError) and "gloo" not in str(error).lower():
            raise
        where = ""
        if checkpointing is not None:
            where = f"; resume with --resume --checkpoint-dir {checkpointing.directory}"
        raise DistributedError(f"{context.prefix()}: another rank left the job ({first})",
                               hint=f"see that rank's error{where}") from None
