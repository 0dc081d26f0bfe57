"""`fpipe init DIR`: a new project that validates and backfills as created.

Copies the templates (fpipe/templates/init: definitions, README) and generates a little synthetic data
into `sample_data/`, deterministically from a seed (Python's `random`, no clock): the same seed gives
byte-identical files. The data carries the mess fpipe is for: late and out-of-order arrivals, and a few
rows that fail the row checks (quarantined on backfill).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

import polars as pl

from fpipe.errors import UsageError
from fpipe.io.writers import write_frame, write_text

START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 90
RENAMES = {"gitignore": ".gitignore"}  # dotfiles are not package data


@dataclass
class InitResult:
    root: Path
    files: list[Path]
    orders: int
    customers: int
    bad_rows: int


def generate_data(seed: int, customers: int = 120) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(orders, plans, number of deliberately bad order rows)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    order_id = 1000
    for c in range(1, customers + 1):
        rate = rng.choice([0.05, 0.15, 0.4, 0.8])  # orders per day
        app = rng.random()
        t = START + timedelta(seconds=rng.randrange(0, 5 * 86400))
        while t < START + timedelta(days=DAYS):
            late = rng.choice([rng.randrange(1, 60), rng.randrange(1, 60), rng.randrange(60, 600), rng.randrange(600, 6 * 3600)])
            rows.append(
                {
                    "order_id": order_id,
                    "customer_id": c,
                    "ts": t,
                    "ingested_at": t + timedelta(seconds=late),
                    "amount": round(rng.lognormvariate(3.2, 0.6), 2),
                    "channel": "app" if rng.random() < app else "web",
                }
            )
            order_id += 1
            t += timedelta(seconds=int(rng.expovariate(rate) * 86400) + 60)
    rows.sort(key=lambda r: r["ingested_at"])  # stored in arrival order: out of order on ts
    bad: list[dict[str, Any]] = [
        {"amount": -12.5},
        {"order_id": None},
        {"order_id": rows[10]["order_id"]},
        {"channel": "fax"},
    ]
    for i, override in enumerate(bad):
        base = dict(rows[100 + 200 * i])
        base.update({"order_id": order_id + i, **override})
        rows.insert(101 + 200 * i, base)
    orders = pl.DataFrame(
        rows,
        schema={"order_id": pl.Int64, "customer_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "ingested_at": pl.Datetime("us", "UTC"),
                "amount": pl.Float64, "channel": pl.String},
    )
    plans: list[dict[str, object]] = []
    for c in range(1, customers + 1):
        t = START - timedelta(days=rng.randrange(1, 200))
        plan = rng.choice(["free", "free", "plus", "pro"])
        while t < START + timedelta(days=DAYS):
            plans.append({"customer_id": c, "plan": plan, "changed_at": t.strftime("%Y-%m-%d %H:%M:%S")})
            t += timedelta(days=rng.randrange(10, 120), seconds=rng.randrange(86400))
            plan = rng.choice(["free", "plus", "pro"])
    return orders, pl.DataFrame(plans), len(bad)


def init_project(root: Path, *, seed: int = 7, force: bool = False) -> InitResult:
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not force:
        raise UsageError(f"'{root}' exists and is not empty", hint="pick a new folder, or pass --force to write into it")
    orders, plans, bad = generate_data(seed)
    subs = {"name": root.resolve().name, "seed": str(seed), "orders": f"{orders.height - bad:,}",
            "customers": str(orders.get_column("customer_id").n_unique()), "bad": str(bad)}
    written: list[Path] = []
    template_root = files("fpipe").joinpath("templates/init")

    def copy(node: object, rel: Path) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):  # type: ignore[attr-defined]
            if child.is_dir():
                copy(child, rel / child.name)
                continue
            target = root / rel / RENAMES.get(child.name, child.name)
            write_text(Template(child.read_text()).safe_substitute(subs), target)
            written.append(target)

    copy(template_root, Path())
    data = root / "sample_data"
    write_frame(orders, data / "orders.parquet")
    write_frame(plans, data / "plans.csv", "csv")
    written += [data / "orders.parquet", data / "plans.csv"]
    return InitResult(root, written, orders.height - bad, int(subs["customers"]), bad)
