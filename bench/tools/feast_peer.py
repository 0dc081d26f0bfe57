"""The 3 bench lookups through Feast's offline point-in-time join (opt-in; runs in `.venv-feast`, not `.venv`).

    .venv-feast/bin/python -m bench.tools.feast_peer DATA_DIR OUT.parquet --store file|duckdb

A throw-away feature repo (local provider; offline store `file` = Feast's Dask store, or `duckdb` = its Ibis
store; FileSource over the bench parquet files) with three FeatureViews: `events` (amount),
`profiles_ttl30d` (country, `ttl` 30 days) and `profiles` (tier), then one
`FeatureStore.get_historical_features` over the spine.

Feast's semantics (0.67.0: feast/infra/offline_stores/dask.py `_filter_ttl`/`_drop_duplicates`, ibis.py
`point_in_time_join`): per entity row at time t, the source rows of that key with
`t - ttl <= event_timestamp <= t` (without a ttl: `event_timestamp <= t`), the one with the largest
event_timestamp, its value even when null. That is fpipe's `latest` with `cutoff: inclusive`, no
`available_time`, and the same inclusive ttl edge. Feast has no arrival bound: `ingested_at` is not used.
Ties at equal event_timestamp have no defined winner in either store (Dask: pandas' default unstable sort
by event_timestamp after a shuffle, keep the last; Ibis: row_number() over event_timestamp desc). No
`created_timestamp_column` is declared: fpipe without `available_time` breaks ties by input order, not by
`ingested_at` (bench/feast_run.py counts the spine rows whose answer depends on a tie).

The `file` store drops an entity row altogether when its key has source rows but none qualifies at t (all
later than t, or all older than the ttl): `_filter_ttl` filters the key-joined rows and only a key with no
rows at all survives as null. This peer does not hide that: it writes every spine row, with a column
`feast_returned` (false for a row Feast did not return; its features are then null), and the harness
checks that the dropped rows are exactly the predicted ones.

Feast cannot take a null entity key (pandas would match a null key to a null key), so spine rows with a null
`user_id` are not sent; they get null features here (SPEC section 3: a null key never matches) and
`feast_returned` true. The spine is sent with its `request_id`; the features come back in Feast's order and
are put back in spine order by `request_id` (none may come back twice).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

import polars as pl

from bench.generate import LOOKUPS

# bench lookup -> (feature view, its ttl in days or None); LOOKUPS gives the source and column
VIEWS = {"last_amount": ("events", None), "user_country": ("profiles_ttl30d", 30), "user_tier": ("profiles", None)}
TIME_FIELD = {"events": "ts", "profiles": "updated_at"}


def feature_repo(repo: Path, data: Path, store_type: str) -> list[str]:
    """Write feature_store.yaml, apply the entity, sources and views; return the feature references."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, String

    (repo / "feature_store.yaml").write_text(
        "project: fpipe_bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"online_store: {{type: sqlite, path: {repo / 'online.db'}}}\n"
        f"offline_store: {{type: {store_type}}}\n"
        "entity_key_serialization_version: 3\n"
    )
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    sources = {
        s: FileSource(name=f"{s}_source", path=str((data / f"{s}.parquet").resolve()), timestamp_field=t)
        for s, t in TIME_FIELD.items()
    }
    dtypes = {"amount": Float64, "country": String, "tier": String}
    views, refs = [], []
    for name, (view, ttl_days) in VIEWS.items():
        source, column, ttl = LOOKUPS[name]
        assert (ttl is None) == (ttl_days is None) and (ttl is None or ttl == f"{ttl_days}d"), (name, ttl, ttl_days)
        views.append(
            FeatureView(
                name=view,
                entities=[user],
                ttl=timedelta(days=ttl_days) if ttl_days else None,
                schema=[Field(name=column, dtype=dtypes[column])],
                source=sources[source],
            )
        )
        refs.append(f"{view}:{column}")
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, *sources.values(), *views])
    return refs


def build(data: Path, store_type: str) -> pl.DataFrame:
    from feast import FeatureStore

    spine = pl.read_parquet(data / "spine.parquet")
    sent = spine.filter(pl.col("user_id").is_not_null() & pl.col("t").is_not_null())
    entity_df = sent.select("request_id", "user_id", pl.col("t").alias("event_timestamp")).to_pandas()
    with tempfile.TemporaryDirectory(prefix="fpipe-feast-") as tmp:
        repo = Path(tmp)
        refs = feature_repo(repo, data, store_type)
        store = FeatureStore(repo_path=str(repo))
        got = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True).to_df()
    cols = {f"{VIEWS[n][0]}__{LOOKUPS[n][1]}": n for n in VIEWS}
    res = pl.from_pandas(got[["request_id", *cols]]).rename(cols)
    if res.get_column("request_id").n_unique() != res.height:
        raise SystemExit(f"feast returned {res.height} rows but only {res.get_column('request_id').n_unique()} distinct request ids")
    res = res.with_columns(
        pl.col("last_amount").cast(pl.Float64), pl.col("user_country", "user_tier").cast(pl.String), pl.lit(True).alias("feast_returned")
    )
    out = spine.join(res, on="request_id", how="left", maintain_order="left")
    returned = pl.col("feast_returned").fill_null(False) | pl.col("user_id").is_null() | pl.col("t").is_null()
    return out.select(*spine.columns, *VIEWS, returned.alias("feast_returned"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--store", choices=("file", "duckdb"), default="file", help="Feast offline store type")
    args = ap.parse_args()
    build(args.data, args.store).write_parquet(args.out)


if __name__ == "__main__":
    main()
