"""Positive-congruent training: the divergences, teacher outputs, the focal loss, and its effect on a real update."""

from __future__ import annotations

import pytest
import torch

from homeloop.datasets import load_hwu64
from homeloop.errors import InvalidInputError
from homeloop.graceful.experiments import intent_predictions, stratified_subset
from homeloop.graceful.pctraining import (
    DIVERGENCES,
    fit_positive_congruent,
    focal_distillation_loss,
    label_space,
    teacher_outputs,
)
from homeloop.nlu import IntentSlotModel, joint_loss

SCENARIOS = {"alarm", "music", "weather", "calendar", "iot"}
SMALL = {"encoder": "fast", "encoder_params": {"hidden_size": 32, "embedding_dim": 32}}


def test_divergences():
    torch.manual_seed(0)
    z = torch.randn(4, 6)
    known = torch.ones(6, dtype=torch.bool)
    old = torch.log_softmax(z, -1)
    for name, fn in DIVERGENCES.items():
        assert torch.allclose(fn(z, old, known), torch.zeros(4), atol=1e-5), name  # identical models: nothing
        assert torch.allclose(fn(z + 3.0, old, known), torch.zeros(4), atol=1e-5), name  # a softmax ignores shifts
        assert bool((fn(torch.randn(4, 6) * 3, old, known) > 0).all()), name
    # logit matching leaves classes the old model never saw out
    partial = torch.tensor([True, True, True, False, False, False])
    moved = z.clone()
    moved[:, 3:] += torch.randn(4, 3)
    assert torch.allclose(DIVERGENCES["logit_matching"](moved, old, partial), torch.zeros(4), atol=1e-5)
    # ELODI's margin: differences below xi cost nothing
    small = z + 0.1 * torch.tensor([1.0, -1, 1, -1, 1, -1])
    assert torch.allclose(DIVERGENCES["logit_difference_inhibition"](small, z, known, xi=0.5), torch.zeros(4))


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(2)
    train = [u for u in load_hwu64("train") if u.scenario in SCENARIOS]
    test = [u for u in load_hwu64("test") if u.scenario in SCENARIOS]
    return train, test


def test_teacher_outputs_align_labels_the_old_model_never_saw(data):
    train, _ = data
    dropped = "alarm_set"
    old = IntentSlotModel(epochs=1, seed=0, **SMALL).fit([u for u in train if u.intent != dropped])
    teacher = teacher_outputs(old, train)
    assert teacher.labels == label_space(train) == sorted({u.intent for u in train})
    column = teacher.labels.index(dropped)
    assert not bool(teacher.known[column]) and int(teacher.known.sum()) == len(teacher.labels) - 1
    assert torch.allclose(teacher.log_probs.exp().sum(1), torch.ones(len(train)), atol=1e-4)
    assert float(teacher.log_probs[:, column].exp().max()) < 1e-6
    predicted = intent_predictions(old, train)
    assert teacher.correct.tolist() == [p == u.intent for p, u in zip(predicted, train, strict=True)]
    ensemble = teacher_outputs([old, old], train)
    assert torch.allclose(ensemble.log_probs, teacher.log_probs, atol=1e-4)
    with pytest.raises(InvalidInputError):
        teacher_outputs([], train)


def test_focal_loss_distils_only_where_the_old_model_was_right(data):
    train, _ = data
    old = IntentSlotModel(epochs=1, seed=0, **SMALL).fit(train)
    new = IntentSlotModel(epochs=1, seed=1, **SMALL).fit(train)
    network = new.network_
    teacher = teacher_outputs(old, train)
    items = [
        {
            "index": i,
            "tokens": tuple(t.lower() for t in u.tokens),
            "intent": teacher.labels.index(u.intent),
            "tags": [new.slot_tags_.index(t) for t in u.tags],
        }
        for i, u in enumerate(train[:64])
    ]
    batch = new._collate(network.encoder)(items)
    network.eval()  # no dropout: losses comparable across calls
    base = float(joint_loss(network, batch))
    assert float(focal_distillation_loss(teacher, weight=0.0)(network, batch)) == pytest.approx(base, rel=1e-5)
    assert float(focal_distillation_loss(teacher, weight=1.0)(network, batch)) > base
    never_right = type(teacher)(teacher.labels, teacher.log_probs, teacher.known, torch.zeros_like(teacher.correct))
    focal = focal_distillation_loss(never_right, weight=1.0)  # alpha=0: nothing to distil
    assert float(focal(network, batch)) == pytest.approx(base, rel=1e-5)
    everywhere = focal_distillation_loss(never_right, weight=1.0, alpha=1.0, beta=0.0)
    assert float(everywhere(network, batch)) > base
    with pytest.raises(InvalidInputError, match="divergence"):
        focal_distillation_loss(teacher, divergence="l1")


def test_positive_congruent_update_agrees_more_with_the_old_model(data):
    """On held-out data, the PC-trained update keeps more of the old model's readings than a plain update."""
    train, test = data
    old = IntentSlotModel(epochs=3, seed=0, **SMALL).fit(stratified_subset(train, 0.5, seed=0))
    plain = IntentSlotModel(epochs=3, seed=1, **SMALL).fit(train)
    pc = fit_positive_congruent(IntentSlotModel(epochs=3, seed=1, **SMALL), train, old=old, weight=10.0)
    old_pred = intent_predictions(old, test)

    def agreement(model) -> float:
        return sum(a == b for a, b in zip(intent_predictions(model, test), old_pred, strict=True)) / len(test)

    assert agreement(pc) > agreement(plain) + 0.02
    assert pc.distillation_["divergence"] == "kl" and 0 < pc.distillation_["teacher_train_accuracy"] < 1
