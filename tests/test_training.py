"""The shared training loop: learns, is deterministic, calls its hooks, restores modes, rejects bad input."""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from homeloop import training
from homeloop.datasets.hwu64 import load_hwu64
from homeloop.errors import InvalidInputError

N_FEATURES = 512
INTENTS = ("alarm_set", "iot_hue_lightoff", "weather_query", "play_music")


def _bag_of_words(tokens: tuple[str, ...]) -> torch.Tensor:
    x = torch.zeros(N_FEATURES)
    for w in tokens:
        x[zlib.crc32(w.encode()) % N_FEATURES] = 1.0
    return x


@pytest.fixture(scope="module")
def hwu_items() -> list[tuple[torch.Tensor, int]]:
    """Hashed bag-of-words vectors of four HWU64 intents: a small, real classification problem."""
    return [(_bag_of_words(u.tokens), INTENTS.index(u.intent)) for u in load_hwu64("train") if u.intent in INTENTS]


def _collate(items):
    return {"x": torch.stack([x for x, _ in items]), "y": torch.tensor([y for _, y in items])}


def _loss(model, batch):
    return F.cross_entropy(model(batch["x"]), batch["y"])


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, len(INTENTS)))


def _accuracy(model, loader) -> float:
    logits = torch.cat(training.predict(model, loader, forward=lambda m, b: m(b["x"])))
    labels = torch.cat([b["y"] for b in loader])
    return float((logits.argmax(1) == labels).float().mean())


def test_fit_decreases_the_loss_and_learns(hwu_items):
    loader = training.make_loader(hwu_items, batch_size=16, seed=0, collate_fn=_collate)
    model = _model()
    before = training.evaluate(model, loader, loss_fn=_loss)
    history = training.fit(model, loader, loss_fn=_loss, epochs=5, lr=1e-2, seed=0)
    assert len(history.epoch_losses) == 5
    assert history.epoch_losses[-1] < 0.5 * history.epoch_losses[0]
    assert history.steps == 5 * len(loader)
    assert training.evaluate(model, loader, loss_fn=_loss) < 0.5 * before
    in_order = training.make_loader(hwu_items, batch_size=64, shuffle=False, collate_fn=_collate)
    assert _accuracy(model, in_order) > 0.9


def test_fit_is_deterministic_for_a_seed(hwu_items):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the model's own initialisation
        model = _model()
        loader = training.make_loader(hwu_items, batch_size=16, seed=7, collate_fn=_collate)
        history = training.fit(model, loader, loss_fn=_loss, epochs=2, lr=1e-2, seed=3)
        runs.append((history.epoch_losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_callbacks_see_every_epoch_and_batch(hwu_items):
    calls: list[tuple[str, int, int]] = []

    class Recorder(training.TrainingCallback):
        def on_train_begin(self, state):
            calls.append(("train_begin", state.epochs, state.batches_per_epoch))

        def on_epoch_end(self, state):
            calls.append(("epoch_end", state.epoch, state.step))

    class OnlyBatches:  # any object with some of the hooks works
        n = 0

        def on_batch_end(self, state):
            assert state.loss is not None
            self.n += 1

    loader = training.make_loader(hwu_items[:40], batch_size=16, seed=0, collate_fn=_collate)
    batches = OnlyBatches()
    training.fit(_model(), loader, loss_fn=_loss, epochs=2, callbacks=[Recorder(), batches])
    assert calls == [("train_begin", 2, 3), ("epoch_end", 0, 3), ("epoch_end", 1, 6)]
    assert batches.n == 6


def test_custom_optimizer_schedule_and_modes(hwu_items):
    model = _model()
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = training.make_loader(hwu_items[:64], batch_size=16, seed=0, collate_fn=_collate)
    seen_lrs = []

    class LrRecorder:
        def on_batch_end(self, state):
            seen_lrs.append(state.lr)

    training.fit(
        model, loader, loss_fn=_loss, optimizer=optimizer, epochs=5, lr_schedule="linear", callbacks=[LrRecorder()]
    )
    assert not model.training  # mode restored
    assert len(seen_lrs) == 20
    assert seen_lrs[0] == pytest.approx(0.25) and seen_lrs[1] == pytest.approx(0.5)  # warm-up over 2 steps
    assert seen_lrs[-1] == pytest.approx(0.5 / 18)  # linear decay towards zero
    assert seen_lrs == sorted(seen_lrs[:2]) + sorted(seen_lrs[2:], reverse=True)
    outputs = training.predict(model, loader, forward=lambda m, b: m(b["x"]))
    assert [o.shape for o in outputs] == [(16, len(INTENTS))] * 4


def test_bad_arguments_and_diverging_loss_raise(hwu_items):
    loader = training.make_loader(hwu_items[:32], batch_size=16, seed=0, collate_fn=_collate)
    with pytest.raises(InvalidInputError, match="epochs"):
        training.fit(_model(), loader, loss_fn=_loss, epochs=-1)
    with pytest.raises(InvalidInputError, match="lr_schedule"):
        training.fit(_model(), loader, loss_fn=_loss, lr_schedule="cosine-ish")
    with pytest.raises(InvalidInputError, match="batch_size"):
        training.make_loader(hwu_items, batch_size=0)
    with pytest.raises(InvalidInputError, match="finite"):
        training.fit(_model(), loader, loss_fn=lambda m, b: _loss(m, b) * float("nan"))


def test_move_to_handles_nested_batches():
    batch = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.ones(1), "text")], "c": 3}
    moved = training.move_to(batch, "cpu")
    assert torch.equal(moved["a"], batch["a"]) and moved["b"][1][1] == "text" and moved["c"] == 3
