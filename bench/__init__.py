"""Benchmarks and quality measurements. Run with `make bench`; never part of the test suite."""
