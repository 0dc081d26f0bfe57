"""fpipe benchmark harness: seeded synthetic data, fpipe vs hand-written Polars, DuckDB SQL and pandas.

`python -m bench.run --sizes S,M` (or `make bench`) generates the data under bench/data/, runs every tool in
its own subprocess, checks that all outputs agree, and writes docs/benchmarks.md.
"""
