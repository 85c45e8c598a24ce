"""Benchmarks for modelrollout (`make bench`): measured in the sandbox, reported as medians and percentiles."""
