"""Home state: the random-vector control and the held-out-homes evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from homeloop.errors import InvalidInputError
from homeloop.home import presence
from homeloop.home.features import load_history, split_days
from homeloop.home.presence import (
    HomeStateModel,
    by_home,
    evaluate_home_state,
    home_folds,
    home_state_labels,
    random_home_vectors,
)
from homeloop.world import WorldConfig, simulate


def test_home_folds_never_share_a_home_between_train_and_test():
    ids = [f"home-{i}" for i in range(11)]
    folds = home_folds(ids, folds=3, seed=4)
    assert len(folds) == 3
    tested = []
    for train, test in folds:
        assert test and not set(train) & set(test)
        assert set(train) | set(test) == set(ids)
        tested += test
    assert sorted(tested) == sorted(ids)  # every home is a test home exactly once
    assert home_folds(list(reversed(ids)), folds=3, seed=4) == folds
    with pytest.raises(InvalidInputError, match="folds"):
        home_folds(ids, folds=1)
    with pytest.raises(InvalidInputError, match="folds"):
        home_folds(ids[:2], folds=3)


def test_random_home_vectors_depend_on_the_home_id_and_seed_only():
    a = random_home_vectors(["h1", "h2", "h3"], 8, seed=0)
    assert a.shape == (3, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(random_home_vectors(["h3", "h1"], 8, seed=0), a[[2, 0]])
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(random_home_vectors(["h1"], 8, seed=1)[0], a[0])


@pytest.fixture(scope="module")
def small_world(tmp_path_factory, fast_nlu):
    from homeloop.data.lake import Lake

    lake = Lake(tmp_path_factory.mktemp("presence") / "lake")
    result = simulate(WorldConfig(homes=6, days=6, seed=5), nlu=fast_nlu)
    result.write(lake, "sim")
    history = load_history(lake, "sim")
    labels = home_state_labels(history, result.tables["truth_presence"].to_pandas())
    return history, labels, split_days(history)


def test_activity_random_is_accepted_and_held_out_homes_are_never_trained_on(small_world, monkeypatch):
    history, labels, days = small_world
    probs = HomeStateModel(features="activity+random", max_iter=20, random_dim=5).fit(history, labels, days)
    p = probs.predict_proba(history)
    assert p.shape == (sum(h.n_slots for h in history.homes), 3)
    assert all(v.shape == (h.n_slots, 3) for h, v in zip(history.homes, by_home(history, p).values(), strict=True))
    assert probs.classifier_.n_features_in_ == 12 + 5

    seen: list[tuple[str, str, frozenset]] = []
    fit, predict = HomeStateModel.fit, HomeStateModel.predict_proba

    def record_fit(self, hist, *a, **k):
        seen.append(("fit", self.features, frozenset(h.home_id for h in hist.homes)))
        return fit(self, hist, *a, **k)

    def record_predict(self, hist, *a, **k):
        seen.append(("predict", self.features, frozenset(h.home_id for h in hist.homes)))
        return predict(self, hist, *a, **k)

    monkeypatch.setattr(HomeStateModel, "fit", record_fit)
    monkeypatch.setattr(HomeStateModel, "predict_proba", record_predict)
    monkeypatch.setattr(presence.HomeStateModel, "__init__", _fast_init)
    emb = np.random.default_rng(0).standard_normal((history.n_devices, 4)).astype(np.float32)
    result = evaluate_home_state(history, labels, days, device_embeddings=emb, home_folds_count=3)
    for name in ("clock", "activity", "activity+home", "activity+random"):
        for part in (result, result["held_out_homes"]):
            assert 0 <= part[name]["macro_f1"] <= 1
    unseen = result["held_out_homes"]
    assert unseen["folds"] == 3 and unseen["homes"] == 6 and unseen["slots"] == result["slots"]
    assert "random_vector_gain_macro_f1" in unseen and "home_embedding_gain_macro_f1" in unseen
    # the first 4 fits (one per feature set) train and predict on every home; the next 12 are the folds
    all_homes = frozenset(h.home_id for h in history.homes)
    pairs = list(zip(seen[0::2], seen[1::2], strict=True))
    assert len(pairs) == 4 + 4 * 3
    assert all(f[2] == all_homes and q[2] == all_homes for f, q in pairs[:4])
    for f, q in pairs[4:]:
        assert f[0] == "fit" and q[0] == "predict" and f[1] == q[1]
        assert not f[2] & q[2] and f[2] | q[2] == all_homes


_init = HomeStateModel.__init__


def _fast_init(self, *, features="activity", max_iter=200, random_dim=64, seed=0):
    _init(self, features=features, max_iter=10, random_dim=random_dim, seed=seed)
