"""The defect model: estimator conventions, held-out quality on a simulated world and on USS, lake labels."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from homeloop.data.lake import Lake
from homeloop.errors import ArtifactError, NoDataError, NotFittedError, SchemaError
from homeloop.selflearn import (
    DefectModel,
    label_defects,
    latest_defect_model,
    load_defect_model,
    rule_defects,
    save_defect_model,
    signals_from_lake,
    train_defect_model_on_truth,
    truth_labels,
)


@pytest.fixture(scope="module")
def world(fast_nlu):
    from homeloop.world import WorldConfig, simulate

    return simulate(WorldConfig(homes=12, days=5, seed=3), nlu=fast_nlu)


@pytest.fixture(scope="module")
def sim_lake(world, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("defects") / "lake")
    world.write(lake, "sim")
    return lake


@pytest.fixture(scope="module")
def trained(sim_lake):
    """The signals of the simulated world, and a model trained on its training homes with its figures."""
    signals = signals_from_lake(sim_lake, "sim")
    model, figures = train_defect_model_on_truth(sim_lake, "sim", signals=signals, seed=0)
    return signals, model, figures


def test_estimator_conventions():
    params = inspect.signature(DefectModel.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in params.items() if name != "self")
    model = DefectModel(max_iter=7)
    assert model.get_params()["max_iter"] == 7 and not hasattr(model, "classifier_")
    with pytest.raises(NotFittedError):
        model.predict_proba(pd.DataFrame())
    with pytest.raises(NoDataError, match="both failed and successful"):
        DefectModel().fit(pd.DataFrame({"barge_in": [1.0, 0.0]}), [True, True])
    with pytest.raises(SchemaError, match="one per signal row"):
        DefectModel().fit(pd.DataFrame({"barge_in": [1.0, 0.0]}), [True])


def test_model_beats_rules_on_held_out_homes(trained):
    signals, model, figures = trained
    assert figures["test_homes"] >= 3 and figures["test_turns"] > 300
    # the learned model reads the signals better than any-rule-fires, on homes it never saw
    assert figures["model"]["auc"] > 0.9
    assert figures["model"]["auc"] > figures["rules"]["auc"] + 0.03
    assert figures["model"]["f1"] > figures["rules"]["f1"]
    p = model.predict_proba(signals)
    assert p.shape[1] == 2 and np.allclose(p.sum(1), 1.0)


def test_label_defects_writes_and_replaces_the_table(sim_lake, trained):
    signals, model, _ = trained
    rules = label_defects(sim_lake, "sim")
    assert rules.schema.metadata[b"labeller"] == b"rules"
    assert rules["defect"].to_pylist() == rule_defects(signals).tolist()
    labelled = label_defects(sim_lake, "sim", model=model, signals=signals)
    stored = sim_lake.read("sim", "defect_labels").to_pandas()
    # replaced whole: one row per turn, the model's labels (not the rules' that were there before)
    assert len(stored) == len(signals) == stored["turn_id"].nunique()
    by_id = stored.set_index("turn_id")
    expected = dict(zip(labelled["turn_id"].to_pylist(), labelled["p_defect"].to_pylist(), strict=True))
    assert np.allclose(by_id.loc[list(expected), "p_defect"].to_numpy(), list(expected.values()))
    # the labels track the truth
    y = truth_labels(sim_lake, "sim", stored["turn_id"].tolist())
    assert (stored["defect"].to_numpy() == y).mean() > 0.85
    # no staging folders left behind
    assert not [p for p in sim_lake.root.iterdir() if p.name.startswith(".")]


def test_save_load_round_trip(trained, tmp_path):
    signals, model, figures = trained
    assert latest_defect_model(tmp_path) is None
    path = save_defect_model(model, tmp_path, metrics=figures)
    assert path.name == "v1" and save_defect_model(model, tmp_path).name == "v2"
    loaded = load_defect_model(tmp_path / "defects")
    assert loaded.path_.name == "v2"
    assert np.array_equal(loaded.predict_proba(signals), model.predict_proba(signals))
    assert json.loads((path / "metadata.json").read_text())["metrics"]["model"]["auc"] == figures["model"]["auc"]
    (path / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_defect_model(path)


def test_lake_without_feedback(lake):
    import datetime as dt

    t0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)
    base = {"session_id": "", "user_id": "u", "home_id": "h", "device_id": "d"}
    lone = [{**base, "turn_id": f"t{i}", "time": t0 + dt.timedelta(hours=i), "asr_text": "hello"} for i in range(3)]
    lake.write("bare", "turns", lone)
    with pytest.raises(NoDataError, match="no feedback signals at all"):
        signals_from_lake(lake, "bare")
    with pytest.raises(NoDataError, match="'turns' is empty"):
        signals_from_lake(lake, "nothing")
    # text alone still shows a rephrase: handled, with a warning
    pair = [
        {**base, "turn_id": "a", "time": t0, "asr_text": "turn on the lamp"},
        {**base, "turn_id": "b", "time": t0 + dt.timedelta(seconds=8), "asr_text": "turn on the lamp please"},
    ]
    lake.write("text-only", "turns", pair)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = label_defects(lake, "text-only")
    assert any("no barge-in, feedback or response type" in str(w.message) for w in caught)
    assert labels.to_pydict()["defect"] == [True, False]


def test_uss_model_beats_rules_on_held_out_dialogues():
    from homeloop.selflearn.uss import evaluate_defects_on_uss, uss_signals

    figures = evaluate_defects_on_uss(corpora=("SGD",), seed=0)
    assert figures["test_dialogues"] == 300 and 0.02 < figures["test_dissatisfied_rate"] < 0.15
    assert figures["model"]["auc"] > figures["rules"]["auc"] + 0.05
    assert figures["model"]["f1"] > figures["rules"]["f1"]
    from homeloop.datasets import load_uss

    sig = uss_signals(load_uss("SGD")[:5])
    assert sig["dissatisfied"].dtype == bool and sig.groupby("dialogue_id")["position"].min().eq(0).all()


def test_cli_learn_defects(world, workspace, monkeypatch):
    from typer.testing import CliRunner

    from homeloop.cli import app

    sim_lake = Lake(workspace.lake)
    world.write(sim_lake, "sim")
    monkeypatch.setenv("HOMELOOP_HOME", str(workspace.root))
    runner = CliRunner()
    result = runner.invoke(app, ["learn", "defects", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["labeller"] == "model" and figures["held_out"]["model"]["auc"] > 0.9
    assert figures["turns"] == Lake(workspace.lake).read("sim", "defect_labels").num_rows
    # real logs (no truth): the saved model is used
    for name in ("turns", "device_events"):
        sim_lake.write("real", name, sim_lake.read("sim", name))
    result = runner.invoke(app, ["learn", "defects", "--dataset", "real", "--json"])
    assert result.exit_code == 0, result.output
    real = json.loads(result.stdout)
    assert real["labeller"] == "model" and real["model_path"] == figures["model_path"]
    assert real["defects"] == figures["defects"]
    result = runner.invoke(app, ["learn", "defects", "--dataset", "real", "--rules", "--json"])
    assert json.loads(result.stdout)["labeller"] == "rules"
    result = runner.invoke(app, ["learn", "defects", "--dataset", "empty", "--json"])
    assert result.exit_code != 0


def test_report_section(sim_lake, trained, tmp_path):
    from types import SimpleNamespace

    from homeloop.demo.defects import defects_report_section

    _, model, figures = trained
    label_defects(sim_lake, "sim", model=model)
    ws = SimpleNamespace(lake=sim_lake.root, models=tmp_path / "models")
    section = defects_report_section(ws, held_out=figures, report_dir=tmp_path / "report")
    assert "defect_labels" in section.paragraphs[0] and "ground truth" in section.paragraphs[1]
    captions = [t[0] for t in section.tables]
    assert captions[0].startswith("Held-out homes") and len(section.tables) == 3
    assert section.figures and (tmp_path / "report" / section.figures[0][0]).is_file()
