"""Partitioned builds: out-of-core on one machine (`--partitions N`, `--memory-limit`) and on a Dask cluster
(`--engine dask --scheduler ADDR`). Both run the same per-partition task (`partitioned.run_partition`)."""
