"""Training: loss, GradCache, distributed helpers, checkpoints, the loop, backbone pre-training."""
