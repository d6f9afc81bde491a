"""Models: pure nn.Modules and their builders (backbones, segmentation stream, connector, embedder)."""
