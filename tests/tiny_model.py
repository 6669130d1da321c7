"""The tiny model config the system, scalable-file and CLI tests share (importable from every test
module: pytest puts tests/, where conftest.py lives, on sys.path). Every part of the paper's
model at the smallest widths: N = 32, M = 128 in 2 machine slices (1 additional), one block per
stage, z of 32 channels."""

TINY = dict(N_machine=32, N=32, M=128, num_slices_m=2, num_slices_a=1, depths=(1,) * 6,
            head_dims=(16,) * 6, inter_dim=32, cc_hidden=(32, 32), z_channels=32)
