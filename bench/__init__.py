"""Benchmarks: each measures a capability as a ratio against a baseline taken in the same run."""
