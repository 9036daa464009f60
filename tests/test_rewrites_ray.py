"""The rewrite mining job on a local Ray instance gives the same table as the single-process job."""

from __future__ import annotations

import sys

import pytest
from test_rewrites import Log, misheard_then_fixed, successes

from homeloop.errors import MissingExtraError
from homeloop.selflearn.rewrites import RewriteMiner

pytestmark = pytest.mark.filterwarnings("ignore:lake dataset .* rule labels:UserWarning")


def test_ray_backend_matches_the_local_one(lake):
    pytest.importorskip("ray", reason="the optional extra homeloop[ray] is not installed")
    log = successes(misheard_then_fixed(Log(), [f"u{i}" for i in range(12)], reaction=True), ["u0", "u1", "u2"])
    for i in range(6):  # a second rewrite, from other users
        u = f"v{i}"
        log.say(u, "play jas", ok=False, intent="play_game").say(u, "play jazz", ok=True, intent="play_music").pause(u)
    ds = log.write(lake)
    local = RewriteMiner(min_support=3).fit(lake, ds)
    ray_miner = RewriteMiner(min_support=3, backend="ray", ray_address="local", shards=2).fit(lake, ds)
    assert ray_miner.figures_["backend"] == "ray" and ray_miner.figures_["shards"] == 2
    assert len(local.table_) == 2
    assert ray_miner.table_.rewrites == local.table_.rewrites
    for key in ("turns", "request_turns", "defective_turns", "sessions", "states", "transitions"):
        assert ray_miner.figures_[key] == local.figures_[key], key


def test_without_ray_the_backend_names_the_extra(lake, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    ds = misheard_then_fixed(Log(), ["u0", "u1", "u2"]).write(lake)
    with pytest.raises(MissingExtraError, match=r"homeloop\[ray\]"):
        RewriteMiner(backend="ray", ray_address="local").fit(lake, ds)
