"""Rephrase detection: candidates from sessions, truth, metrics, the span model on a planted set, the baseline."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import random
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from homeloop.errors import NotFittedError, SchemaError
from homeloop.selflearn import sessionize
from homeloop.selflearn.artifacts import load_rephrase_model, save_rephrase_model
from homeloop.selflearn.rephrase import (
    PairwiseRephraseDetector,
    RephraseCandidate,
    RephraseExample,
    SpanRephraseDetector,
    detect_rephrases,
    rephrase_examples,
    rephrase_metrics,
    similarity_rule,
    truth_rephrase_targets,
)

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)

DEVICES = ["kitchen light", "garage door", "bedroom lamp", "coffee maker", "porch light", "living room fan", "tv"]
VERBS = ["turn on the {}", "switch off the {}", "please start the {}", "can you stop the {}", "activate the {}"]
OTHER = [
    "what is the weather tomorrow",
    "play some jazz music",
    "set an alarm for seven",
    "tell me a joke",
    "how tall is mount everest",
    "add milk to my shopping list",
    "what time is it in tokyo",
    "read me the news",
]


def _planted(n: int, seed: int) -> tuple[list[RephraseExample], list[int | None]]:
    """Requests followed by a near-repeat of themselves (the rephrase) or by unrelated requests only."""
    rnd = random.Random(seed)
    examples, targets = [], []
    for i in range(n):
        request = rnd.choice(VERBS).format(rnd.choice(DEVICES))
        k = rnd.randint(1, 3)
        candidates = [rnd.choice(OTHER) for _ in range(k)]
        target = None
        if rnd.random() < 0.6:
            target = rnd.randrange(k)
            candidates[target] = request if rnd.random() < 0.5 else "i said " + request
        cands = tuple(RephraseCandidate(f"c{i}-{j}", c, 4.0 + 6 * j) for j, c in enumerate(candidates))
        examples.append(RephraseExample(f"q{i}", request, f"s{i}", cands, "h"))
        targets.append(target)
    return examples, targets


@pytest.fixture(scope="module")
def span_model():
    import torch

    torch.set_num_threads(2)
    train_x, train_y = _planted(96, seed=0)
    return SpanRephraseDetector(epochs=2, batch_size=8, lr=1e-4, max_length=48, seed=0).fit(train_x, train_y)


def test_examples_from_sessions():
    def turn(tid, sec, text, user="u"):
        return {
            "turn_id": tid,
            "user_id": user,
            "device_id": "d",
            "time": T0 + dt.timedelta(seconds=sec),
            "asr_text": text,
        }

    rows = [
        turn("a", 0, "turn on the lamp"),
        turn("b", 4, "no"),
        turn("c", 10, "turn the lamp on"),
        turn("d", 40, "thanks"),
        turn("e", 50, "what time is it"),  # 50 s after a: outside a's 45 s window
        turn("z", 3, "hello", user="v"),  # alone in its session
    ]
    examples = {e.turn_id: e for e in rephrase_examples(sessionize(pd.DataFrame(rows)))}
    assert [c.turn_id for c in examples["a"].candidates] == ["b", "c", "d"]
    assert examples["a"].candidates[1].gap_seconds == pytest.approx(10.0)
    assert "b" not in examples  # a "no" is no request
    assert [c.turn_id for c in examples["c"].candidates] == ["d", "e"]
    assert "e" not in examples and "z" not in examples
    short = rephrase_examples(sessionize(pd.DataFrame(rows)), max_candidates=1, window_seconds=5)
    assert {e.turn_id: [c.turn_id for c in e.candidates] for e in short} == {"a": ["b"]}
    assert similarity_rule([examples["a"]]) == [1]


def test_truth_targets_need_the_same_goal(lake):
    from homeloop.data.schema import table

    ex = [
        RephraseExample(
            "q", "turn on the lamp", "s", (RephraseCandidate("x", "no", 3), RephraseCandidate("r", "lamp on", 9))
        ),
        RephraseExample("o", "what time is it", "s2", (RephraseCandidate("r2", "lamp on", 9),)),
    ]
    truth = [
        {"turn_id": "q", "goal_id": "g1", "kind": "request"},
        {"turn_id": "x", "goal_id": "g1", "kind": "reaction"},
        {"turn_id": "r", "goal_id": "g1", "kind": "rephrase"},
        {"turn_id": "o", "goal_id": "g2", "kind": "request"},
        {"turn_id": "r2", "goal_id": "g3", "kind": "rephrase"},
    ]
    base = {"time": T0, "true_text": "t", "failure_point": "none", "success": True, "asr_error": "none", "attempt": 0}
    lake.write("sim", "truth_turns", [{**base, **t} for t in truth])
    assert table("truth_turns")
    assert truth_rephrase_targets(lake, "sim", ex) == [1, None]


def test_metrics():
    m = rephrase_metrics([0, None, 1, 0], [0, 1, 1, None])
    assert (m["precision"], m["recall"]) == (pytest.approx(2 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4))
    assert m["true_pairs"] == 3 and m["predicted_pairs"] == 3
    assert rephrase_metrics([None], [None])["f1"] == 0.0
    with pytest.raises(SchemaError):
        rephrase_metrics([0], [0, 1])


def test_estimators_are_keyword_only_and_check_fitting():
    for cls in (SpanRephraseDetector, PairwiseRephraseDetector):
        params = inspect.signature(cls.__init__).parameters
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "self")
    x, _ = _planted(2, seed=1)
    with pytest.raises(NotFittedError):
        SpanRephraseDetector().predict(x)
    with pytest.raises(NotFittedError):
        PairwiseRephraseDetector().predict(x)
    for cls in (SpanRephraseDetector, PairwiseRephraseDetector):
        with pytest.raises(NotFittedError):
            cls().predict_proba(x)
        assert clone(cls(threshold=0.3) if cls is PairwiseRephraseDetector else cls(margin=0.3)).get_params(deep=True)
    with pytest.raises(SchemaError, match="target 5"):
        SpanRephraseDetector().fit(x, [5, None])


def test_span_model_shapes_and_beats_chance_on_planted_set(span_model):
    test_x, test_y = _planted(60, seed=7)
    probs = span_model.token_probabilities(test_x[:5])
    for p, ex in zip(probs, test_x[:5], strict=True):
        assert p["start"].shape == p["end"].shape == (len(p["ids"]),)
        assert np.isclose(p["start"].sum(), 1.0, atol=1e-4) and np.isclose(p["end"].sum(), 1.0, atol=1e-4)
        assert len(p["spans"]) == len(ex.candidates)
        allowed = {0} | {t for s, e in p["spans"] for t in range(s, e + 1)}
        outside = [i for i in range(len(p["ids"])) if i not in allowed]
        assert p["start"][outside].sum() < 1e-3  # only candidate tokens or [CLS] can start a span
    predicted = span_model.predict(test_x)
    metrics = rephrase_metrics(predicted, test_y)
    # chance: pick a random candidate or none; the planted repeats are easy after a short fine-tuning
    rnd = random.Random(0)
    chance = rephrase_metrics([rnd.choice([None, *range(len(e.candidates))]) for e in test_x], test_y)
    assert metrics["f1"] > max(0.6, chance["f1"] + 0.2), (metrics, chance)
    assert list(span_model.classes_) == [None, 0, 1, 2]
    proba = span_model.predict_proba(test_x)
    assert proba.shape == (len(test_x), 4) and ((proba >= 0) & (proba <= 1)).all()
    assert np.allclose(proba.sum(axis=1), 1.0)
    # the predicted candidate's column holds the most probability among the candidates
    assert all(p is None or proba[i, 1:].argmax() == p for i, p in enumerate(predicted))
    too_many = RephraseExample("q", "x", "s", tuple(RephraseCandidate(f"c{j}", "x", j) for j in range(4)))
    with pytest.raises(SchemaError, match="at most 3 candidates"):
        span_model.predict_proba([too_many])


def test_span_model_save_load_and_cli(span_model, tmp_path, workspace, lake, monkeypatch):
    test_x, _ = _planted(20, seed=9)
    path = save_rephrase_model(span_model, workspace.models)
    assert path == workspace.models / "rephrase" / "rephrase" / "v1"
    loaded = load_rephrase_model(path)
    assert loaded.predict(test_x) == span_model.predict(test_x)
    assert np.array_equal(loaded.predict_proba(test_x), span_model.predict_proba(test_x))
    assert list(loaded.classes_) == list(span_model.classes_) and loaded.get_params() == span_model.get_params()
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["format"] == "homeloop.selflearn.rephrase_span" and meta["training_data"]["size"] == 96
    pairs = detect_rephrases(test_x, loaded)
    assert set(pairs.columns) >= {"turn_id", "rephrase_turn_id", "score"}
    # the CLI applies the newest saved model to any lake dataset (here: logs without truth)
    rows = []
    for i, ex in enumerate(test_x):
        t = T0 + dt.timedelta(hours=i)
        rows.append({"turn_id": ex.turn_id, "session_id": "", "user_id": "u", "home_id": "h", "device_id": "d",
                     "time": t, "asr_text": ex.text, "response_type": "action"})  # fmt: skip
        for c in ex.candidates:
            rows.append({"turn_id": c.turn_id, "session_id": "", "user_id": "u", "home_id": "h", "device_id": "d",
                         "time": t + dt.timedelta(seconds=c.gap_seconds), "asr_text": c.text})  # fmt: skip
    lake.write("logs", "turns", rows)
    from typer.testing import CliRunner

    from homeloop.cli import app

    monkeypatch.setenv("HOMELOOP_HOME", str(workspace.root))
    out = tmp_path / "pairs.csv"
    result = CliRunner().invoke(app, ["learn", "rephrases", "--dataset", "logs", "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["model_path"] == str(path) and figures["rephrase_pairs"] == len(pd.read_csv(out))
    assert figures["requests_with_candidates"] >= len(test_x)
    # no model and no truth: a clear error
    shutil.rmtree(workspace.models / "rephrase")
    result = CliRunner().invoke(app, ["learn", "rephrases", "--dataset", "logs"])
    assert result.exit_code != 0 and "no saved rephrase model" in result.output


def test_a_tampered_or_incomplete_span_model_is_refused(span_model, tmp_path):
    from homeloop.errors import ArtifactError

    path = save_rephrase_model(span_model, tmp_path)
    weights = path / "weights.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactError, match="weights.safetensors"):
        load_rephrase_model(path)
    weights.unlink()
    with pytest.raises(ArtifactError, match="weights.safetensors is missing"):
        load_rephrase_model(path)
    weights.write_bytes(good)
    spec = (path / "model.json").read_bytes()
    (path / "model.json").unlink()
    with pytest.raises(ArtifactError, match="model.json is missing"):
        load_rephrase_model(path)
    (path / "model.json").write_bytes(spec)
    shutil.rmtree(path / "encoder")
    with pytest.raises(ArtifactError, match="encoder"):
        load_rephrase_model(path)


def test_pairwise_baseline_on_planted_set():
    train_x, train_y = _planted(80, seed=3)
    test_x, test_y = _planted(40, seed=4)
    model = PairwiseRephraseDetector().fit(train_x, train_y)
    assert 0 < model.threshold_ < 1
    proba = model.predict_proba(test_x)
    assert proba.shape == (len(test_x), len(model.classes_)) and np.allclose(proba.sum(axis=1), 1.0)
    assert rephrase_metrics(model.predict(test_x), test_y)["f1"] > 0.6
