"""Figures of graceful updates: each update's error against its negative flip rate.

:func:`error_vs_nfr_figure` draws the results of
:func:`~homeloop.graceful.experiments.positive_congruent_experiment` or
:func:`~homeloop.graceful.experiments.probe_update_experiment` (e.g. as
``benchmarks/graceful_updates.py --out`` writes them); the demo report's graceful
section shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["error_vs_nfr_figure"]


def _nfr_point(e: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """(error %, NFR %, bar below, bar above): a 95% interval for one draw, one standard deviation over seeds."""
    nfr = e["negative_flip_rate"]
    if isinstance(nfr, Mapping):  # positive_congruent_experiment: one draw with a bootstrap interval
        return (
            100 * e["error_rate"],
            100 * nfr["value"],
            100 * (nfr["value"] - nfr["low"]),
            100 * (nfr["high"] - nfr["value"]),
        )
    spread = 100 * e.get("negative_flip_rate_std", 0.0)  # probe_update_experiment: mean over seeds
    return 100 * e["error_rate"], 100 * nfr, spread, spread


def error_vs_nfr_figure(pc_results: Mapping[str, Any], path: Path) -> Path:
    """One panel per dataset: each update's error (x) against its negative flip rate (y, with its bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(pc_results)
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(5.2 * max(1, len(datasets)), 3.6), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=False):
        r = pc_results[name]
        for variant, e in r["variants"].items():
            error, nfr, below, above = _nfr_point(e)
            colour = "#7f7f7f" if variant == "plain" else "#2ca02c" if "bcwi" in variant else "#1f77b4"
            ax.errorbar(error, nfr, yerr=[[below], [above]], fmt="o", color=colour, capsize=3)
            ax.annotate(variant, (error, nfr), fontsize=7, xytext=(4, 3), textcoords="offset points")
        plain = r["variants"].get("plain")
        if plain:
            error, nfr, _, _ = _nfr_point(plain)
            ax.axhline(nfr / 2, ls=":", color="#c0504d", lw=1)
            ax.axvline(error + 0.5, ls=":", color="#c0504d", lw=1)
        ax.set_title(f"{name}: old model error {100 * r['old']['error_rate']:.1f}%", fontsize=9)
        ax.set_xlabel("error of the new model (%)")
        ax.set_ylabel("negative flip rate (%)")
    fig.suptitle("Goal (dotted): half the plain NFR, at most +0.5 points of error", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
