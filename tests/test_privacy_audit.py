"""Privacy attacks and audits: attack metrics, the empirical epsilon bound, canaries, private NLU, the CLI."""

from __future__ import annotations

import json
import math
import random
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.datasets.hwu64 import load_hwu64
from homeloop.errors import InvalidInputError
from homeloop.nlu import save_model
from homeloop.privacy import (
    attack_metrics,
    empirical_epsilon,
    exposure,
    extract_secret,
    lira_offline_scores,
    plant_canaries,
    train_private_nlu,
)
from homeloop.privacy.canaries import Canary


def test_attack_metrics_separate_and_random_scores() -> None:
    perfect = attack_metrics(np.arange(100) + 1000.0, np.arange(100))
    assert perfect.auc == 1.0 and perfect.tpr_at_0_1_fpr == 1.0
    rng = np.random.default_rng(0)
    random_scores = attack_metrics(rng.normal(size=2000), rng.normal(size=2000))
    assert 0.45 < random_scores.auc < 0.55 and random_scores.tpr_at_0_1_fpr < 0.02
    with pytest.raises(InvalidInputError, match="members and non-members"):
        attack_metrics([], [1.0])


def test_empirical_epsilon_is_a_valid_and_useful_lower_bound() -> None:
    """Randomised response with epsilon = 1 is exactly 1-DP: the bound stays below 1 yet finds most of it."""
    eps = 1.0
    p = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        members = (rng.random(20000) < p).astype(float)
        non_members = (rng.random(20000) < 1 - p).astype(float)
        bounds.append(empirical_epsilon(members, non_members, seed=seed))
    assert all(b <= eps for b in bounds)
    assert min(bounds) > 0.8
    rng = np.random.default_rng(1)
    assert empirical_epsilon(rng.normal(size=1000), rng.normal(size=1000)) < 0.4
    # perfect separation of 400 + 400: the bound is limited by the sample, ln(200 / 3.7) ~ 4
    separated = empirical_epsilon(np.ones(400), np.zeros(400))
    assert 3.0 < separated < math.log(200)


def test_lira_scores_need_matching_shadow_shapes() -> None:
    scores = lira_offline_scores([3.0, 0.0], np.array([[0.0, 0.0], [0.2, -0.2]]))
    assert scores[0] > scores[1]
    with pytest.raises(InvalidInputError, match=r"expected shape \[shadows, 2\]"):
        lira_offline_scores([1.0, 2.0], np.zeros((3, 5)))


class MemorisingClassifier:
    """Gives the canary's intent a probability growing with the number of secret digits in place."""

    def __init__(self, canary: Canary | None) -> None:
        self.canary = canary
        self.intents_ = ["other", "secret_intent"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            words = text.split()[-4:]
            hits = sum(a == b for a, b in zip(words, self.canary.secret, strict=True)) if self.canary else 0
            p = 0.1 + 0.2 * hits
            out.append([1 - p, p])
        return np.array(out)


def test_canaries_are_planted_and_extracted_from_a_memorising_model() -> None:
    data = load_hwu64("train")[:200]
    planted, canaries = plant_canaries(data, count=3, repeats=4, seed=1)
    assert len(planted) == 212 and len(canaries) == 3
    assert sum(u.source == "canary" for u in planted) == 12
    assert all(c.intent in {u.intent for u in data} for c in canaries)
    canary = Canary(prefix="my pin code is", secret=("4", "0", "7", "1"), intent="secret_intent")
    leaky = MemorisingClassifier(canary)
    guess, queries = extract_secret(leaky, canary.prefix, canary.intent, seed=3)
    assert guess == canary.secret and queries < 10_000 / 10
    assert exposure(leaky, canary) == pytest.approx(math.log2(10_000))
    blind = MemorisingClassifier(None)
    assert exposure(blind, canary) < 1.1  # every candidate ties: the middle rank


@pytest.fixture(scope="module")
def private_tiny_nlu():
    data = random.Random(0).sample(load_hwu64("train"), 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, record = train_private_nlu(
            data,
            target_epsilon=8.0,
            epochs=2,
            encoder_params={"ngram_buckets": 500, "embedding_dim": 16, "hidden_size": 16},
            vocabulary="none",
        )
    return model, record


def test_private_nlu_trains_through_fit_and_records_its_budget(private_tiny_nlu) -> None:
    model, record = private_tiny_nlu
    assert record.clipping == "bookkeeping" and record.accountant == "prv"
    assert 7.0 < record.epsilon <= 8.0 + 1e-6 < record.epsilon_rdp
    assert record.steps == record.epochs * round(300 / record.expected_batch_size)
    assert model.network_.encoder.vocabulary == []  # no vocabulary read from the private data
    assert model.privacy_["noise_multiplier"] == record.noise_multiplier > 0
    assert all(p.requires_grad for p in model.network_.parameters())  # hooks are gone
    assert len(model.predict(["turn off the lights"])) == 1


def test_cli_audits_a_saved_private_model(private_tiny_nlu, workspace) -> None:
    model, record = private_tiny_nlu
    path = save_model(model, workspace.models, training_data={"name": "hwu64", "privacy": record.as_dict()})
    args = ["--workspace", str(workspace.root), "audit", "privacy", str(path), "--epsilon", "inf", "--members", "40"]
    args += ["--shadows", "1", "--canaries", "1", "--repeats", "2", "--epochs", "1", "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout)
    row = figures["epsilon inf"]
    assert 0.0 <= row["loss_attack_auc"] <= 1.0 and row["empirical_epsilon_lower_bound"] >= 0.0
    assert 0.0 <= figures["deployed_loss_attack_train_vs_test"]["auc"] <= 1.0
    assert figures["model_epsilon"] == pytest.approx(record.epsilon)


def test_report_section_has_the_curves_tables_and_figures(tmp_path) -> None:
    from homeloop.demo.privacy import privacy_report_section

    utility = {
        "datasets": {
            "hwu64": {
                "tfidf_baseline_accuracy": 0.85,
                "fast": [
                    {"epsilon": math.inf, "intent_accuracy": 0.84, "drop_points": 0.0},
                    {"epsilon": 8.0, "intent_accuracy": 0.6, "drop_points": 24.0},
                ],
            }
        }
    }
    row = {
        "target_epsilon": 8.0,
        "accountant_epsilon": 7.99,
        "empirical_epsilon": 0.1,
        "loss_attack": {"auc": 0.52, "tpr_at_0_1_fpr": 0.0},
        "lira_attack": {"auc": 0.51, "tpr_at_0_1_fpr": 0.001},
        "canary_exposure": 1.2,
        "extraction_exact": 0.0,
        "extraction_digits": 0.1,
    }
    speed = {
        "encoder": "fast",
        "batch_size": 64,
        "modes": {"none": {"time_ratio": 1.0}, "bookkeeping": {"time_ratio": 1.2}},
    }
    section = privacy_report_section(tmp_path, utility=utility, attacks={"rows": [row]}, speed=speed)
    assert len(section.tables) == 3 and len(section.figures) == 2
    assert all((tmp_path / name).stat().st_size > 1000 for name, _ in section.figures)
    assert privacy_report_section(tmp_path).tables == []


def test_report_section_shows_the_cost_of_privacy_against_data_size(tmp_path) -> None:
    from homeloop.demo.privacy import privacy_report_section

    def run(examples: int, non_private: float, drop8: float) -> dict:
        rows = [{"epsilon": math.inf, "intent_accuracy": non_private, "drop_points": 0.0}]
        rows.append({"epsilon": 8.0, "intent_accuracy": non_private - drop8 / 100, "drop_points": drop8})
        return {"dataset": "hwu64", "train_examples": examples, "intents": 64, "minilm-probe": rows}

    data_size = {"datasets": {"hwu64 (1 of train)": run(6400, 0.9, 1.2), "hwu64 (0.25 of train)": run(1600, 0.87, 4.3)}}
    section = privacy_report_section(tmp_path, data_size=data_size)
    ((title, header, rows),) = section.tables
    assert header[-1] == "drop at epsilon 8" and "amount of training data" in title
    assert [r[3] for r in rows] == [25.0, 100.0]  # examples per intent, smallest first
    assert [r[-1] for r in rows] == [4.3, 1.2] and [r[4] for r in rows] == [0.87, 0.9]
    assert (tmp_path / section.figures[0][0]).stat().st_size > 1000


def test_private_probe_learns_within_its_budget_and_can_be_audited() -> None:
    from homeloop.nlu.probe import SentenceVectors
    from homeloop.privacy import audit_privacy
    from homeloop.privacy.probe import train_private_probe

    train = load_hwu64("train")
    intents = sorted({u.intent for u in train})[:8]
    data = [u for u in train if u.intent in intents]
    random.Random(0).shuffle(data)
    fit_part, held = data[:800], data[800:1000]
    vectors = SentenceVectors()
    probe, record = train_private_probe(fit_part, target_epsilon=8.0, seed=0, vectors=vectors)
    assert record is not None and record.epsilon <= 8.0 + 1e-3 and record.epsilon <= record.epsilon_rdp + 0.02
    predicted = probe.predict_proba([" ".join(u.tokens) for u in held]).argmax(1)
    accuracy = np.mean([probe.intents_[p] == u.intent for p, u in zip(predicted, held, strict=True)])
    assert accuracy > 0.6  # chance is 1/8

    def trainer(examples, seed, epsilon):
        return train_private_probe(examples, target_epsilon=epsilon, seed=seed, vectors=vectors)

    audit = audit_privacy(
        data, epsilons=(math.inf, 8.0), members=100, shadows=1, canaries=1, repeats=4, digits=2, trainer=trainer
    )
    plain, private = audit.rows
    assert plain.accountant_epsilon == math.inf and private.accountant_epsilon <= 8.0 + 1e-3
    assert private.empirical_epsilon <= private.accountant_epsilon
    assert audit.settings["recipe"] == "trainer" and audit.settings["encoder"] is None


def test_private_minilm_nlu_takes_its_recipe_where_the_caller_leaves_it(monkeypatch) -> None:
    import homeloop.privacy.nlu as private_nlu

    seen = []
    real = private_nlu.make_private

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(private_nlu, "make_private", spy)
    data = random.Random(1).sample(load_hwu64("train"), 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, record = train_private_nlu(data, target_epsilon=8.0, encoder="minilm", minilm_trainable_layers=1)
        _, chosen = train_private_nlu(
            data, target_epsilon=8.0, encoder="minilm", epochs=1, batch_size=8, max_grad_norm=2.0
        )
    assert seen[0]["max_grad_norm"] == "adaptive" and seen[0]["batch_size"] == 16 // 4
    assert record.epochs == private_nlu.PRIVATE_MINILM_RECIPE["epochs"] and record.expected_batch_size == 4
    assert (seen[1]["max_grad_norm"], seen[1]["batch_size"], chosen.epochs) == (2.0, 8, 1)  # the caller's own
    assert record.final_max_grad_norm != record.max_grad_norm  # the adaptive norm moved, and the record says where
    assert chosen.final_max_grad_norm == chosen.max_grad_norm == 2.0
