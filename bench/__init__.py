"""Benchmarks, run by hand or by a make target: `python -m bench.<name>`."""
