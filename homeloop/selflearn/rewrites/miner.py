"""The rewrite-mining estimator, :class:`RewriteMiner` (count, then select), and :func:`mine_rewrites`."""

from __future__ import annotations

import datetime as dt
import time
import warnings
from typing import Any

from sklearn.base import BaseEstimator

from homeloop.errors import InvalidInputError, NotFittedError
from homeloop.selflearn.rewrites.counting import count_chains
from homeloop.selflearn.rewrites.selection import TARGET_SCORERS, select_rewrites
from homeloop.selflearn.rewrites.table import RewriteTable

__all__ = ["RewriteMiner", "mine_rewrites"]


class RewriteMiner(BaseEstimator):
    """Mines a :class:`RewriteTable` from a lake dataset's turns (a scikit-learn estimator: ``fit`` returns self).

    After ``fit``: ``table_`` (the rewrites), ``figures_`` (counts, timings, where labels came from).
    ``pool_by="interpretation"`` pools the chain's states by NLU interpretation (see :func:`select_rewrites`).
    ``backend`` is ``"local"`` (DuckDB in this process) or ``"ray"`` (see
    :mod:`homeloop.selflearn.distributed`; ``ray_address`` names the cluster).
    """

    def __init__(
        self,
        *,
        min_support: int = 3,
        min_users: int = 2,
        min_improvement: float = 0.3,
        prior_strength: float = 2.0,
        target_scorer: str = "absorption",
        pool_by: str = "text",
        labels: str = "auto",
        session_gap_seconds: float = 60.0,
        rephrase_window_seconds: float = 30.0,
        backend: str = "local",
        ray_address: str | None = None,
        shards: int | None = None,
    ) -> None:
        self.min_support = min_support
        self.min_users = min_users
        self.min_improvement = min_improvement
        self.prior_strength = prior_strength
        self.target_scorer = target_scorer
        self.pool_by = pool_by
        self.labels = labels
        self.session_gap_seconds = session_gap_seconds
        self.rephrase_window_seconds = rephrase_window_seconds
        self.backend = backend
        self.ray_address = ray_address
        self.shards = shards

    def fit(self, lake, dataset: str) -> RewriteMiner:
        if self.target_scorer not in TARGET_SCORERS:
            raise InvalidInputError(
                f"target_scorer {self.target_scorer!r}: expected one of {', '.join(sorted(TARGET_SCORERS))}"
            )
        if self.min_support < 1 or self.min_users < 1:
            raise InvalidInputError(
                f"min_support, min_users: expected at least 1, got {self.min_support}, {self.min_users}"
            )
        t0 = time.perf_counter()
        count_options = {
            "labels": self.labels,
            "session_gap_seconds": self.session_gap_seconds,
            "rephrase_window_seconds": self.rephrase_window_seconds,
        }
        if self.backend == "local":
            counts = count_chains(lake, dataset, **count_options)
        elif self.backend == "ray":
            from homeloop.selflearn.distributed import count_chains_ray

            counts = count_chains_ray(lake, dataset, address=self.ray_address, shards=self.shards, **count_options)
        else:
            raise InvalidInputError(f"backend {self.backend!r}: expected 'local' or 'ray'")
        t_count = time.perf_counter() - t0
        if self.labels == "auto" and counts.figures.get("labels") == "rules":
            warnings.warn(
                f"lake dataset {dataset!r} has no defect_labels table (run `homeloop learn defects`): "
                "mining with rule labels (error response, barge-in, negative feedback, a quick follow-up)",
                UserWarning,
                stacklevel=2,
            )
        table, figures = select_rewrites(
            counts,
            min_support=self.min_support,
            min_users=self.min_users,
            min_improvement=self.min_improvement,
            prior_strength=self.prior_strength,
            target_scorer=self.target_scorer,
            pool_by=self.pool_by,
        )
        table.info.update(
            {
                "dataset": dataset,
                "labels": counts.figures.get("labels"),
                "mined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "params": self.get_params(),
            }
        )
        self.table_ = table
        self.figures_ = {
            **counts.figures,
            **figures,
            "seconds_count": round(t_count, 3),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return self

    def check_fitted(self) -> None:
        if not hasattr(self, "table_"):
            raise NotFittedError("RewriteMiner: call fit(lake, dataset) before using the table")


def mine_rewrites(lake, dataset: str, **options: Any) -> RewriteTable:
    """Mine a rewrite table from ``dataset``'s turns (options as for :class:`RewriteMiner`)."""
    miner = RewriteMiner(**options).fit(lake, dataset)
    miner.table_.info["figures"] = miner.figures_
    return miner.table_
