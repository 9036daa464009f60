"""Backward-compatible embeddings: retrieval metrics, the influence loss, compatibility across models and sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from homeloop.datasets import load_hwu64
from homeloop.errors import InvalidInputError, NotFittedError
from homeloop.graceful.bct import IntentEmbedder, compatibility_matrix, influence_loss, retrieval_scores
from homeloop.graceful.experiments import stratified_subset

SCENARIOS = {"alarm", "music", "weather", "calendar"}
SMALL = {"hidden_size": 32, "embedding_dim": 32}


def test_retrieval_scores_by_hand():
    gallery = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    queries = np.array([[1, 0], [0.2, 0.98]], dtype=np.float32)
    scores = retrieval_scores(queries, ["a", "a"], gallery, ["a", "a", "b", "b"])
    # query 1 ranks a, a first (AP 1); query 2 ranks b, b, a, a (AP = (1/3 + 2/4) / 2)
    assert scores["top1"] == pytest.approx(0.5)
    assert scores["map"] == pytest.approx((1 + (1 / 3 + 2 / 4) / 2) / 2)
    with pytest.raises(InvalidInputError, match="same"):
        retrieval_scores(queries, ["a", "a"], np.zeros((4, 3), dtype=np.float32), ["a"] * 4)


def test_influence_loss_adds_the_old_classifiers_cross_entropy_only_for_known_labels():
    torch.manual_seed(0)
    old_head = torch.nn.Linear(4, 3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout = torch.nn.Identity()
            self.emb = torch.nn.Parameter(torch.randn(2, 4))
            self.classifier = torch.nn.Linear(4, 2)

        def forward(self, inputs):
            return self.emb, self.classifier(self.emb)

    net = Net()
    batch = {"inputs": None, "label": torch.tensor([0, 1])}
    plain = torch.nn.functional.cross_entropy(net.classifier(net.emb), batch["label"])
    # new label 0 is old label 2, new label 1 is unknown to the old model
    loss = influence_loss(old_head, torch.tensor([2, -1]), influence_weight=0.5)(net, batch)
    extra = torch.nn.functional.cross_entropy(old_head(net.emb[:1]), torch.tensor([2]))
    assert float(loss) == pytest.approx(float(plain + 0.5 * extra), rel=1e-5)
    none_known = influence_loss(old_head, torch.tensor([-1, -1]))(net, batch)
    assert float(none_known) == pytest.approx(float(plain), rel=1e-6)


@pytest.fixture(scope="module")
def hwu_small():
    torch.set_num_threads(2)
    train = [u for u in load_hwu64("train") if u.scenario in SCENARIOS]
    test = [u for u in load_hwu64("test") if u.scenario in SCENARIOS]
    return train, test


def test_bct_makes_new_queries_work_against_an_old_gallery(hwu_small):
    train, test = hwu_small
    kw = {"embedding_dim": 32, "encoder_params": SMALL, "epochs": 6}
    old = IntentEmbedder(seed=0, **kw).fit(stratified_subset(train, 0.5, seed=0))
    new_plain = IntentEmbedder(seed=1, **kw).fit(train)
    new_bct = IntentEmbedder(seed=2, **kw).fit(train, old=old)
    device = IntentEmbedder(seed=3, embedding_dim=32, encoder_params={"hidden_size": 8, "embedding_dim": 8}, epochs=6)
    device.fit(train, old=new_bct)
    m = compatibility_matrix({"old": old, "new": new_plain, "bct": new_bct, "device": device}, test, train)
    top1 = {(q, g): v["top1"] for q, row in m.items() for g, v in row.items()}
    n_intents = len({u.intent for u in train})
    # (measured on this setup: old/old 0.68, new/old 0.08, bct/old 0.70, bct/bct 0.80, device/bct 0.48)
    # a plain new model's space is unrelated to the old one: cross retrieval is near chance (1 / intents)
    assert top1["new", "old"] < 2 / n_intents
    # the BCT model's queries find the old gallery's intents as well as the old model's own queries, roughly
    assert top1["bct", "old"] > 0.9 * top1["old", "old"] and top1["bct", "old"] > 5 * top1["new", "old"]
    # and the small device model's queries work against the large model's gallery
    assert top1["device", "bct"] > 0.5 * top1["bct", "bct"] and top1["device", "bct"] > 3 * top1["new", "old"]
    assert new_bct.compatible_with_ == {"encoder": "fast", "embedding_dim": 32, "labels": n_intents}
    assert new_plain.compatible_with_ is None
    embeddings = new_bct.transform(["wake me up at seven", "play some jazz"])
    assert embeddings.shape == (2, 32) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_embedder_checks(hwu_small):
    train, _ = hwu_small
    with pytest.raises(NotFittedError):
        IntentEmbedder().transform(["hello"])
    old = IntentEmbedder(embedding_dim=16, encoder_params=SMALL, epochs=1).fit(train[:200])
    with pytest.raises(InvalidInputError, match="embedding_dim 32"):
        IntentEmbedder(embedding_dim=32, encoder_params=SMALL, epochs=1).fit(train[:200], old=old)
    other = IntentEmbedder(embedding_dim=8, encoder_params=SMALL, epochs=1).fit(train[:200])
    m = compatibility_matrix({"a": old, "b": other}, train[:20], train[:50])
    assert m["a"]["b"] is None and m["a"]["a"] is not None
