"""Figures of self-learning: the defect probability of turns that failed and that succeeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["defect_probability_figure"]


def defect_probability_figure(p: np.ndarray, y: np.ndarray, path: Path) -> None:
    """Histograms (log scale) of the defect probability ``p`` of turns that failed and that succeeded (``y``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    bins = np.linspace(0, 1, 26)
    ax.hist(p[~y], bins=bins, alpha=0.6, label="succeeded", color="tab:green")
    ax.hist(p[y], bins=bins, alpha=0.6, label="failed", color="tab:red")
    ax.set_xlabel("p(defect)")
    ax.set_ylabel("turns")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
