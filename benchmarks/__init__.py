"""Benchmarks of the one-shot engine (run: ``python -m benchmarks.oneshot``)."""
