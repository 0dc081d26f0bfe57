"""The peers fpipe is measured against. Each is a module run as its own process:

    python -m bench.tools.<name> DATA_DIR OUT.parquet --part all|lookups|windows

and writes the same training set as `fpipe backfill` (spine columns, then features in definition order).
The semantics every peer reproduces (SPEC section 3, exclusive cutoff):
- visibility: a row is visible at t iff max(event_time, available_time) < t; a null time never is;
- window w at t: visible rows with t - w <= event_time < t; count counts rows, sum/mean/min/max ignore
  null amounts; an empty count or sum is 0, every other aggregate null;
- latest: among visible rows, the largest (event_time, available_time, input position); the value even when
  null; ttl: t - event_time <= ttl;
- a spine row with a null key sees nothing.
"""
