"""`fpipe train MODEL --engine dask [--scheduler tcp://HOST:8786]`: fit the booster with `xgboost.dask`.

Only the fitting moves to the cluster. The driver builds (or reads) the training set, splits it by time,
encodes the features and computes the labels exactly as the local trainer does (fpipe.train.trainer);
then the train and valid rows are cut into one block per worker, scattered to the workers, wrapped in
`DaskDMatrix`es, and `xgboost.dask.train` builds the trees with histograms all-reduced across the workers
(the same params, seed, rounds and early stopping on the valid rows). The booster comes back to the driver,
which cuts it at its best iteration, predicts the test rows, scores them beside the baseline and exports
the same artefacts as a local run, recording `engine: dask`.

Without `--scheduler`, fpipe starts a `distributed.LocalCluster` in this process (one single-threaded worker
process per core, at most 4) and stops it when training ends.

The result is not byte-identical to the local engine: each worker sketches the quantiles of its own rows
and the merged histogram bins differ slightly from one machine's, so split points (and predictions) move a
little (tests/test_train_dask.py measures it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpipe.distributed.dask_engine import connect, import_distributed
from fpipe.errors import UsageError
from fpipe.spec.model import ModelSpec
from fpipe.train.contract import FeatureColumn
from fpipe.train.split import Split
from fpipe.train.trainer import DEFAULT_NTHREAD, cut_at_best

MAX_LOCAL_WORKERS = 4


@dataclass
class DaskFitter:
    """What `train_model` calls instead of the local fit; `name` and `info` go into metadata.json."""

    client: Any  # distributed.Client
    workers: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "dask"

    def _scatter(self, a: np.ndarray) -> Any:
        """A dask array of `a` in one block per worker, each block sent straight to its worker."""
        import dask.array as da

        blocks = [b for b in np.array_split(a, len(self.workers)) if len(b)]
        futures = [self.client.scatter(b, workers=[w]) for b, w in zip(blocks, self.workers, strict=False)]
        return da.concatenate([da.from_delayed(f, shape=b.shape, dtype=b.dtype) for f, b in zip(futures, blocks, strict=True)])

    def _dmatrix(self, x: np.ndarray, y: np.ndarray, contract: Sequence[FeatureColumn]) -> Any:
        import xgboost.dask as dxgb

        return dxgb.DaskDMatrix(
            self.client,
            self._scatter(np.ascontiguousarray(x)),
            self._scatter(y),
            missing=np.nan,
            feature_names=[c.name for c in contract],
            feature_types=[c.xgb_type for c in contract],
            enable_categorical=True,
        )

    def fit(
        self, params: dict[str, Any], spec: ModelSpec, x: np.ndarray, y: np.ndarray, split: Split, contract: Sequence[FeatureColumn]
    ) -> tuple[Any, int]:
        """The local fit's contract (fpipe.train.trainer.Fit), on the cluster."""
        import xgboost as xgb
        import xgboost.dask as dxgb

        if "nthread" not in spec.params:  # each worker uses its own thread count (`dask worker --nthreads`)
            params = {k: v for k, v in params.items() if k != "nthread"}
        # as_current: xgboost.dask resolves the client of the collections it persists (set_as_default is off)
        with self.client.as_current(), xgb.config_context(verbosity=0):
            dtrain = self._dmatrix(x[split.train], y[split.train], contract)
            dvalid = self._dmatrix(x[split.valid], y[split.valid], contract)
            out = dxgb.train(
                self.client,
                params,
                dtrain,
                num_boost_round=spec.num_boost_round,
                evals=[(dvalid, "valid")],
                early_stopping_rounds=spec.early_stopping_rounds,
                verbose_eval=False,
            )
        booster = out["booster"]
        booster.set_param({"nthread": int(spec.params.get("nthread", DEFAULT_NTHREAD))})  # the driver predicts as the local trainer does
        return cut_at_best(booster)


@contextlib.contextmanager
def dask_fitter(scheduler: str | None, timeout: float = 30.0) -> Iterator[DaskFitter]:
    """A fitter bound to the cluster at `scheduler`, or to a LocalCluster started here when it is None."""
    distributed = import_distributed("xgboost.dask")
    with contextlib.ExitStack() as stack:
        cluster = None
        if scheduler is None:
            import logging
            import warnings

            n = max(1, min(os.cpu_count() or 1, MAX_LOCAL_WORKERS))
            with warnings.catch_warnings():  # the scheduler's HTTP server moves off a busy port 8787: harmless
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
                )
            stack.callback(cluster.close)
        client = connect(scheduler, timeout, cluster)
        stack.callback(client.close)
        workers = sorted(client.scheduler_info().get("workers", {}))
        if not workers:
            raise UsageError(
                f"--scheduler: the Dask scheduler at '{scheduler}' has no workers",
                hint="start workers with `dask worker tcp://HOST:8786`",
            )
        info = {"scheduler": scheduler, "workers": len(workers), "local_cluster": cluster is not None}
        yield DaskFitter(client, workers, info)
