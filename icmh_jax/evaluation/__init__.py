"""RD evaluation: image metrics, BD-rate, the paper's tables and plots, real-bitstream runs."""
