"""The models compute what PyG's own modules compute, with fast gradients."""

from __future__ import annotations

import torch

from edgegnn.models import LightGCNConfig, SAGEConfig, build_model


def test_lightgcn_embeddings_equal_pyg_lightgcn_on_edge_index(small_split, small_graph):
    model = build_model(LightGCNConfig(num_layers=3), small_split.num_users, small_split.num_items)
    users, items = model(small_graph)
    # PyG's own path: gcn_norm + scatter over edge_index on every call.
    reference = model.gnn.get_embedding(small_graph.edge_index)
    torch.testing.assert_close(torch.cat([users, items]), reference, rtol=1e-5, atol=1e-6)


def test_lightgcn_gradient_equals_autograd_through_torch_sparse(small_split, small_graph):
    model = build_model(LightGCNConfig(num_layers=2), small_split.num_users, small_split.num_items)
    users, items = model(small_graph)
    (users.square().sum() + items.sum()).backward()
    ours = model.ego_embeddings.grad.clone()

    x = model.ego_embeddings.detach().clone().requires_grad_(True)
    dense = small_graph.sym_adjacency.to_dense()
    h1 = dense @ x
    final = (x + h1 + dense @ h1) / 3
    (final[: small_split.num_users].square().sum() + final[small_split.num_users:].sum()).backward()
    torch.testing.assert_close(ours, x.grad, rtol=1e-4, atol=1e-6)


def test_sage_forward_equals_sageconv_forward(small_split, small_graph):
    model = build_model(SAGEConfig(embedding_dim=16, hidden_dim=8), small_split.num_users, small_split.num_items)
    users, items = model(small_graph)
    x = model.ego_embeddings
    h1 = torch.relu(model.conv1(x, small_graph.edge_index))
    h2 = model.conv2(h1, small_graph.edge_index)
    torch.testing.assert_close(torch.cat([users, items]), h2, rtol=1e-5, atol=1e-6)


def test_sage_gradient_flows_to_embeddings_and_weights(small_split, small_graph):
    model = build_model(SAGEConfig(embedding_dim=8, hidden_dim=4), small_split.num_users, small_split.num_items)
    users, items = model(small_graph)
    (users @ items.T).mean().backward()
    x = model.ego_embeddings.detach().clone().requires_grad_(True)
    h1 = torch.relu(model.conv1(x, small_graph.edge_index))
    h2 = model.conv2(h1, small_graph.edge_index)
    (h2[: small_split.num_users] @ h2[small_split.num_users:].T).mean().backward()
    torch.testing.assert_close(model.ego_embeddings.grad, x.grad, rtol=1e-4, atol=1e-7)
    assert model.conv1.lin_l.weight.grad.abs().sum() > 0


def test_isolated_nodes_do_not_produce_nan():
    import numpy as np

    from edgegnn.data import Interactions
    from edgegnn.models.graph import BipartiteGraph

    train = Interactions(users=np.array([0, 0]), items=np.array([0, 1]),
                         user_ids=np.array(["a", "b"]), item_ids=np.array(["x", "y", "z"]))
    graph = BipartiteGraph.from_interactions(train)
    for config in (LightGCNConfig(embedding_dim=4), SAGEConfig(embedding_dim=4, hidden_dim=4)):
        users, items = build_model(config, 2, 3)(graph)
        assert torch.isfinite(users).all() and torch.isfinite(items).all()
