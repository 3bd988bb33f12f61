"""Training on torch.distributed: users split over ranks, items replicated (`edgegnn train --distributed`).

One process per rank, started by any launcher that sets torch's `env://` rendezvous variables
(`torchrun --standalone --nproc_per_node 2` on one machine, `srun torchrun` on Slurm, a
PyTorchJob on Kubernetes). Every rank reads the same data (checked by sha256), owns a
contiguous block of renumbered users (`partition`) and a replica of the item rows; LightGCN's
propagation sums the items' partial rows over ranks (`sharded`), the losses split exactly by
users (`steps`), and the training state is checkpointed with torch.distributed.checkpoint
(`state`) and gathered into the ordinary checkpoint at the end (`train`).

Modules:
    context    the process group from env://, errors every rank agrees on, a differentiable all-reduce
    partition  which rank owns which users (contiguous blocks of renumbered ids)
    sharded    LightGCN over one rank's block: its users, every item
    steps      one epoch of the whole-data, BPR or BCE loss on one rank
    state      DCP checkpoints of the training state; the gathered ordinary checkpoint
    train      the training loop with early stopping, resume and the final gather
"""
