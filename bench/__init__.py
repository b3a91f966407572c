"""Benchmarks of the medbot runtime, each run as ``python -m bench.<name>``."""
