"""edgegnn: take a GNN recommender from training to an edge device.

Train (or import) a LightGCN-style recommender with PyTorch Geometric, fold it into the
small model that runs on the device, compress it, export it per target and profile it.
Heavy libraries (torch, PyG) are imported inside the functions that need them, so that
`import edgegnn` and `import edgegnn.runtime` stay light.
"""

__version__ = "0.2.0"
