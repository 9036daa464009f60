"""Linear probes, weight interpolation (BCWI) and the probe update experiment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from homeloop.errors import InvalidInputError
from homeloop.graceful.experiments import probe_update_experiment, stratified_indices
from homeloop.graceful.interpolation import interpolate_weights
from homeloop.nlu.probe import fit_probe, probe_logits


def clusters(n_per_class: int, n_classes: int = 4, dim: int = 16, spread: float = 0.9, seed: int = 0):
    centres = torch.nn.functional.normalize(
        torch.randn(n_classes, dim, generator=torch.Generator().manual_seed(99)), dim=1
    )
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g) / dim**0.5
    return torch.nn.functional.normalize(x, dim=1), y


def test_interpolation_moves_every_weight_between_the_two_models():
    torch.manual_seed(0)
    old, new = nn.Linear(3, 2), nn.Linear(3, 2)
    assert torch.equal(interpolate_weights(old, new, 0.0).weight, new.weight)
    assert torch.allclose(interpolate_weights(old, new, 1.0).weight, old.weight)
    half = interpolate_weights(old, new, 0.5)
    assert torch.allclose(half.bias, (old.bias + new.bias) / 2)
    assert half is not new and not torch.equal(new.weight, half.weight)  # a copy; new is untouched


def test_interpolation_refuses_different_architectures_and_bad_weights():
    with pytest.raises(InvalidInputError, match="'weight' has shape"):
        interpolate_weights(nn.Linear(3, 2), nn.Linear(3, 5), 0.5)
    with pytest.raises(InvalidInputError, match="differ in architecture"):
        interpolate_weights(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2)), 0.5)
    with pytest.raises(InvalidInputError, match="old_weight"):
        interpolate_weights(nn.Linear(3, 2), nn.Linear(3, 2), 1.5)


def test_probe_learns_held_out_clusters_and_checks_its_input():
    x, y = clusters(60)
    x_test, y_test = clusters(30, seed=1)
    probe = fit_probe(x, y, 4, epochs=10, batch_size=32)
    accuracy = float((probe_logits(probe, x_test).argmax(1) == y_test).float().mean())
    assert accuracy > 0.9
    with pytest.raises(InvalidInputError, match="class indices"):
        fit_probe(x, y + 1, 4)
    with pytest.raises(InvalidInputError, match="one row per label"):
        fit_probe(x[:-1], y, 4)


def test_stratified_indices_keep_every_label():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"]
    keep = stratified_indices(labels, 0.5, seed=0)
    assert keep == sorted(keep)
    assert sorted({labels[i] for i in keep}) == ["a", "b", "c"]
    assert sum(labels[i] == "a" for i in keep) == 5


def test_probe_update_experiment_measures_flips_per_seed():
    x, y = clusters(40, spread=1.6)
    x_test, y_test = clusters(40, spread=1.6, seed=1)
    variants = [
        {"name": "plain"},
        {"name": "fd", "divergence": "kl", "weight": 1.0, "temperature": 4.0},
        {"name": "old weights", "interpolate": 1.0},
    ]
    r = probe_update_experiment(
        x,
        y.tolist(),
        x_test,
        y_test.tolist(),
        n_classes=4,
        seeds=(0, 1, 2),
        variants=variants,
        probe_options={"batch_size": 16},
    )
    plain, fd, old = (r["variants"][k] for k in ("plain", "fd", "old weights"))
    assert len(plain["per_seed"]) == 3 and plain["nfr_ratio_to_plain"] == pytest.approx(1.0)
    assert r["old"]["error_rate"] < 0.5 and plain["error_rate"] < 0.5  # chance is 0.75
    assert plain["negative_flip_rate"] > 0  # the noisy clusters leave flips to remove
    # interpolating all the way back gives the old model: no flips at all, and the old model's error
    assert old["negative_flip_rate"] == 0 and old["positive_flip_rate"] == 0
    assert old["error_rate"] == pytest.approx(r["old"]["error_rate"])
    assert 0 <= fd["negative_flip_rate"] <= 1 and fd["error_rate_std"] >= 0


def test_report_section_shows_probe_updates(tmp_path):
    from homeloop.demo.graceful import graceful_report_section

    x, y = clusters(20, spread=1.6)
    r = probe_update_experiment(
        x,
        y.tolist(),
        x,
        y.tolist(),
        n_classes=4,
        seeds=(0, 1),
        variants=[{"name": "plain"}, {"name": "bcwi 0.5", "interpolate": 0.5}],
        probe_options={"batch_size": 16},
    )
    section = graceful_report_section(tmp_path, probe_results={"toy": r})
    assert (tmp_path / "graceful_nfr_probe.png").stat().st_size > 0
    title, header, rows = section.tables[0]
    assert "2 seeds" in title and header[3] == "NFR %"
    assert [row[1] for row in rows] == ["plain", "bcwi 0.5"]


#: n-grams only: the encoder's tables do not depend on the data, so models trained on different data share them
NGRAMS_ONLY = {"hidden_size": 16, "embedding_dim": 16, "ngram_buckets": 2000, "min_count": 2**62}


@pytest.fixture(scope="module")
def nlu_pair():
    """An old NLU that never saw one intent, and a new one trained on everything from the same seed."""
    from homeloop.datasets import load_hwu64
    from homeloop.nlu import IntentSlotModel

    train = [u for u in load_hwu64("train") if u.scenario in {"alarm", "weather", "music"}][:300]
    dropped = sorted({u.intent for u in train})[0]
    old = IntentSlotModel(encoder="fast", epochs=1, encoder_params=NGRAMS_ONLY, seed=0)
    old.fit([u for u in train if u.intent != dropped])
    new = IntentSlotModel(encoder="fast", epochs=1, encoder_params=NGRAMS_ONLY, seed=0).fit(train)
    return old, new, dropped, train


def test_nlu_interpolation_aligns_heads_by_label_and_refuses_other_architectures(nlu_pair):
    from homeloop.graceful.interpolation import interpolate_models
    from homeloop.nlu import IntentSlotModel

    old, new, dropped, train = nlu_pair
    mixed = interpolate_models(old, new, 0.25)
    w_old, w_new = old.network_.intent_head.weight, new.network_.intent_head.weight
    w_mix = mixed.network_.intent_head.weight
    for i, intent in enumerate(new.intents_):
        if intent == dropped:  # only the new model knows it: its row is the new model's
            assert torch.equal(w_mix[i], w_new[i])
        else:
            j = old.intents_.index(intent)
            assert torch.allclose(w_mix[i], 0.75 * w_new[i] + 0.25 * w_old[j], atol=1e-6)
    assert torch.equal(new.network_.intent_head.weight, w_new)  # the new model is left as it was
    assert mixed.training_data_["interpolated_with_old"] == {"old_weight": 0.25}
    assert len(mixed.predict(["set an alarm for seven"])) == 1
    with pytest.raises(InvalidInputError, match="differs between the models"):
        other = IntentSlotModel(encoder="fast", epochs=1, encoder_params={**NGRAMS_ONLY, "hidden_size": 24}).fit(train)
        interpolate_models(old, other, 0.5)


def test_cli_interpolate_saves_a_candidate_to_propose(nlu_pair, tmp_path):
    import json

    from typer.testing import CliRunner

    from homeloop.cli import app
    from homeloop.graceful.interpolation import interpolate_models
    from homeloop.nlu import load_model, save_model

    old, new, _, _ = nlu_pair
    v_old, v_new = save_model(old, tmp_path / "saved"), save_model(new, tmp_path / "saved")
    root = ["--workspace", str(tmp_path / "ws")]
    runner = CliRunner()
    result = runner.invoke(
        app, [*root, "models", "interpolate", str(v_old), str(v_new), "--old-weight", "0.3", "--json"]
    )
    assert result.exit_code == 0, result.output
    saved = load_model(json.loads(result.stdout)["path"])
    expected = interpolate_models(old, new, 0.3).network_.intent_head.weight
    assert torch.allclose(saved.network_.intent_head.weight, expected, atol=1e-6)
    result = runner.invoke(app, [*root, "models", "interpolate", str(v_old), str(tmp_path / "missing"), "--json"])
    assert result.exit_code == 2
