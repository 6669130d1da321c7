"""Golden-vector checks against the PyTorch references (`icmh golden-check NAME PATH.npz`)."""
