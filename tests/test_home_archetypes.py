"""Archetypes: k-means on embeddings, titles, purity and NMI."""

from __future__ import annotations

import numpy as np
import pytest

from homeloop.errors import InvalidInputError
from homeloop.home.archetypes import archetype_scores, default_clusters, find_archetypes, plot_device_map


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    truth = np.repeat(["lamp", "porch", "coffee"], 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(0, 0.5, (60, 2))
    names = (
        ["Living Room Lamp"] * 12
        + ["Plug 1"] * 8
        + ["Porch Light"] * 14
        + ["Plug 1"] * 6
        + ["Coffee Maker"] * 15
        + ["Plug 2"] * 5
    )
    return x, names, truth


def test_clusters_are_found_and_titled_by_their_characteristic_name(tmp_path):
    x, names, truth = _blobs()
    found = find_archetypes(x, names, k=3, on_hours=np.r_[np.full(20, 4.0), np.full(20, 11.0), np.full(20, 0.3)])
    scores = archetype_scores(found.labels, truth)
    assert scores["purity"] == 1.0 and scores["nmi"] == pytest.approx(1.0)
    # "Plug 1" is common everywhere, so it titles no cluster
    assert sorted(found.titles) == ["Coffee Maker", "Living Room Lamp", "Porch Light"]
    assert set(found.table.columns) >= {"cluster", "title", "devices", "common_names", "median_on_hours"}
    path = plot_device_map(x, found, np.ones(60), tmp_path / "map.png")
    assert path.stat().st_size > 1000


def test_random_labels_score_low_and_bad_input_is_refused():
    _, _, truth = _blobs()
    rng = np.random.default_rng(1)
    scores = archetype_scores(rng.integers(0, 3, 60), truth)
    assert scores["nmi"] < 0.2 and scores["purity"] < 0.6
    assert default_clusters(1) == 1 and default_clusters(8) == 2 and default_clusters(546) == 17
    assert default_clusters(10**6) == 40
    with pytest.raises(InvalidInputError):
        find_archetypes(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(InvalidInputError):
        find_archetypes(np.zeros((3, 2)), ["a", "b", "c"], k=5)
    one = find_archetypes(np.zeros((1, 2)), ["Only Bulb"])  # a home with a single device
    assert one.titles == ["Only Bulb"]
