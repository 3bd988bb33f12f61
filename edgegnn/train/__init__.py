"""Training, evaluation and checkpoints of GNN recommenders (needs torch + PyG)."""
