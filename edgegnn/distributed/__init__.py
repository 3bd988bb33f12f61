"""Training on torch.distributed: users and items split over ranks (`edgegnn train --distributed`).

One process per rank, started by any launcher that sets torch's `env://` rendezvous variables
(`torchrun --standalone --nproc_per_node 2` on one machine, `srun torchrun` on Slurm, a
PyTorchJob on Kubernetes). Every rank reads the same data (checked by sha256) and owns a
contiguous block of renumbered users and one of items (`partition`); a model's propagation
fetches the item rows a rank's pairs touch from their owners and returns its partial item sums
to them (`halo`, `sharded`: LightGCN, GraphSAGE, graph attention), the losses split exactly
(`steps`), graph filters are fitted from products over the ranks' rows (`graph_filter`), and
the training state is checkpointed with torch.distributed.checkpoint (`state`, resumable at
another world size) and gathered into the ordinary checkpoint at the end (`train`).

Modules:
    context       the process group from env://, errors every rank agrees on, a differentiable all-reduce
    partition     which rank owns which users and items (contiguous blocks of renumbered ids); halo sizes
    halo          rows owned by other ranks: the exchange plan, a differentiable gather and scatter-add
    sharded       LightGCN, GraphSAGE and graph attention over one rank's blocks of users and items
    steps         one epoch of the whole-data, BPR or BCE loss on one rank
    graph_filter  GF-CF, ChebyCF and BSPM fitted over the ranks' user rows
    state         DCP checkpoints of the training state, resharding; the gathered ordinary checkpoint
    train         the training loop with early stopping, resume and the final gather
"""
