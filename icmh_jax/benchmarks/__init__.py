"""Benchmarks behind `icmh bench TARGET` (one harness, one module per target)."""
