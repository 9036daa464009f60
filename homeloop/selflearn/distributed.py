"""The rewrite mining job on a Ray cluster (optional extra ``homeloop[ray]``).

The counting stage is split by user: shard ``i`` of ``k`` counts the users whose
hash falls in it (a session never spans users, so shards are independent) with
the same DuckDB query as the single-process path, as a Ray task each. The
driver adds the shards' counts up by text (:meth:`ChainCounts.combine`) and
solves the chain locally: the chain is small next to the logs. Every node needs
the lake's path (a shared file system or object store mount).

``address="local"`` starts a Ray instance in this process (what the tests
use); any other address is passed to :func:`ray.init`. The single-process
path stays the default (:class:`~homeloop.selflearn.rewrites.miner.RewriteMiner`
with ``backend="local"``).
"""

from __future__ import annotations

from typing import Any

from homeloop.errors import MissingExtraError

__all__ = ["count_chains_ray", "require_ray"]

_INSTALL_HINT = "pip install 'homeloop[ray]'  (or: pip install ray==2.60.0)"


def require_ray():
    """The ``ray`` module, or :class:`~homeloop.errors.MissingExtraError` with the install command."""
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError(f"the Ray backend needs the optional extra 'ray': {_INSTALL_HINT}") from exc
    return ray


def _count_shard(lake_root: str, dataset: str, shard: tuple[int, int], options: dict[str, Any]):
    from homeloop.data.lake import Lake
    from homeloop.selflearn.rewrites.counting import count_chains

    return count_chains(Lake(lake_root), dataset, shard=shard, threads=1, **options)


def count_chains_ray(lake, dataset: str, *, address: str | None = None, shards: int | None = None, **options: Any):
    """:func:`~homeloop.selflearn.rewrites.counting.count_chains` as ``shards`` Ray tasks (default: the
    cluster's CPUs)."""
    ray = require_ray()
    from homeloop.selflearn.rewrites.counting import ChainCounts

    started_here = False
    if not ray.is_initialized():
        if address in (None, "", "local"):
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started_here = True
    try:
        k = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1)(_count_shard)
        futures = [task.remote(str(lake.root), dataset, (i, k), options) for i in range(k)]
        parts = ray.get(futures)
    finally:
        if started_here:
            ray.shutdown()
    counts = ChainCounts.combine(parts)
    counts.figures["backend"] = "ray"
    counts.figures["shards"] = k
    return counts
