"""A small simulated world shared by the home tests (written once per session into a lake)."""

from __future__ import annotations

from homeloop.data.lake import Lake
from homeloop.home.features import load_history
from homeloop.world import WorldConfig, simulate

HOME_WORLD = WorldConfig(homes=16, days=12, seed=3, forget_probability=0.2)


def home_world(tmp_path_factory, nlu):
    """``(lake, history, tables)`` of :data:`HOME_WORLD` in dataset ``sim``."""
    lake = Lake(tmp_path_factory.mktemp("home-world") / "lake")
    result = simulate(HOME_WORLD, nlu=nlu)
    result.write(lake, "sim")
    return lake, load_history(lake, "sim"), result.tables
