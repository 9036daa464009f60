"""Usage archetypes: k-means clusters of device embeddings, each titled by a characteristic device name.

The title of a cluster is the device name that is most over-represented in it: the
name whose share among the cluster's devices divided by its share among all devices
is highest (names seen at least twice in the cluster first, so one odd device does
not title a cluster). :func:`archetype_scores` measures purity and normalised mutual
information against true archetypes (the simulator's ``truth_devices``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from homeloop.errors import InvalidInputError

__all__ = ["Archetypes", "archetype_scores", "default_clusters", "find_archetypes", "plot_device_map", "project_2d"]


def default_clusters(n_devices: int) -> int:
    """A default k for ``n_devices``: about sqrt(n / 2), between 2 and 40 (and never more than the devices)."""
    if n_devices < 1:
        raise InvalidInputError("n_devices: expected at least one device to cluster")
    return int(min(max(2, round(np.sqrt(n_devices / 2))), 40, n_devices))


@dataclass
class Archetypes:
    labels: np.ndarray  # cluster of each device
    titles: list[str]  # title of each cluster
    centers: np.ndarray
    table: pd.DataFrame  # cluster, title, devices, top names, typical on-hours

    def title_of(self, i: int) -> str:
        return self.titles[int(self.labels[i])]


def _normalise(name: str) -> str:
    return " ".join(str(name).lower().split())


def find_archetypes(
    embeddings: np.ndarray,
    names: Sequence[str],
    *,
    k: int | None = None,
    on_hours: Sequence[float] | None = None,
    seed: int = 0,
) -> Archetypes:
    """Cluster ``embeddings`` with k-means (``k`` defaults to :func:`default_clusters`) and title each cluster."""
    from sklearn.cluster import KMeans

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(names):
        raise InvalidInputError(f"embeddings: expected one row per name ({len(names)}), got shape {x.shape}")
    if len(x) == 0:
        raise InvalidInputError("embeddings: expected at least one device, got none")
    k = default_clusters(len(x)) if k is None else int(k)
    if not 1 <= k <= len(x):
        raise InvalidInputError(f"k: expected 1 to {len(x)} clusters for {len(x)} devices, got {k}")
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    labels = km.labels_
    norm = [_normalise(n) for n in names]
    overall = Counter(norm)
    total = len(norm)
    titles, rows = [], []
    for c in range(k):
        members = [norm[i] for i in np.flatnonzero(labels == c)]
        counts = Counter(members)

        def lift(name: str, counts: Counter = counts, size: int = len(members)) -> tuple:
            return (counts[name] >= 2, (counts[name] / max(size, 1)) / (overall[name] / total), counts[name], name)

        best = max(counts, key=lift) if counts else ""
        title = next((names[i] for i in np.flatnonzero(labels == c) if norm[i] == best), best)
        titles.append(str(title))
        row = {
            "cluster": c,
            "title": str(title),
            "devices": len(members),
            "common_names": ", ".join(f"{n} ({m})" for n, m in counts.most_common(3)),
        }
        if on_hours is not None:
            row["median_on_hours"] = float(np.median(np.asarray(on_hours)[labels == c])) if members else float("nan")
        rows.append(row)
    return Archetypes(labels, titles, km.cluster_centers_, pd.DataFrame(rows))


def archetype_scores(labels: Sequence[int], truth: Sequence[str]) -> dict[str, float]:
    """Purity (share of devices in their cluster's majority true archetype) and NMI against ``truth``."""
    from sklearn.metrics import normalized_mutual_info_score

    labels = np.asarray(labels)
    truth = np.asarray(truth, dtype=object)
    if labels.size == 0:
        return {"purity": float("nan"), "nmi": float("nan")}
    majority = sum(Counter(truth[labels == c]).most_common(1)[0][1] for c in np.unique(labels))
    return {"purity": majority / labels.size, "nmi": float(normalized_mutual_info_score(truth, labels))}


def project_2d(embeddings: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """Two-dimensional coordinates of ``embeddings``: UMAP when installed, PCA otherwise; returns (xy, method)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) < 3:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1])))), "none"
    try:
        import umap  # type: ignore[import-not-found]

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x), "PCA"


def plot_device_map(
    embeddings: np.ndarray, archetypes: Archetypes, on_hours: Sequence[float], path: Path, *, seed: int = 0
) -> Path:
    """The embedding space in 2-D, coloured by cluster (left, with titles) and by typical on-duration (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy, method = project_2d(embeddings, seed=seed)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    cmap = plt.get_cmap("tab20")
    axes[0].scatter(xy[:, 0], xy[:, 1], c=[cmap(int(c) % 20) for c in archetypes.labels], s=10, alpha=0.8)
    for c, title in enumerate(archetypes.titles):
        sel = archetypes.labels == c
        if sel.any():
            cx, cy = xy[sel].mean(axis=0)
            axes[0].annotate(title, (cx, cy), fontsize=7, ha="center", weight="bold")
    axes[0].set_title(f"device embeddings ({method}), coloured by archetype")
    sc = axes[1].scatter(xy[:, 0], xy[:, 1], c=np.log10(np.asarray(on_hours) + 0.05), s=10, cmap="viridis")
    fig.colorbar(sc, ax=axes[1], label="log10 typical on-span (hours)")
    axes[1].set_title("coloured by typical on-duration")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
