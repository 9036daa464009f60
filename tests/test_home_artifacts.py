"""The device-state model through the artefact store: versioned, identical after loading, tampering named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from homeloop import artifacts
from homeloop.errors import ArtifactError, MissingInputError
from homeloop.home.artifacts import FORMAT, KIND
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.pipeline import find_hunches, load_device_model, model_path, save_device_model
from tests.contract.examples_home import EXAMPLES


@pytest.fixture(scope="module")
def fitted():
    example = EXAMPLES["DeviceStateModel"]()
    history, queries = example.predict_args
    model = example.make().set_params(ensemble=2).fit(*example.fit_args)
    return model, history, queries


def test_a_saved_device_model_is_a_version_that_loads_and_predicts_identically(fitted, tmp_path):
    model, history, queries = fitted
    first = save_device_model(model, tmp_path, dataset="tiny", metrics={"auc": 0.75})
    second = save_device_model(model, tmp_path, dataset="tiny")
    assert (first, second) == (tmp_path / KIND / "tiny" / "v1", tmp_path / KIND / "tiny" / "v2")
    assert sorted(p.name for p in first.iterdir()) == ["metadata.json", "model.json", "weights.safetensors"]
    loaded = load_device_model(model_path(tmp_path, "tiny"))  # the folder of versions: the newest
    assert isinstance(loaded, DeviceStateModel) and loaded.path_ == second
    meta = loaded.metadata_
    assert (meta["format"], meta["kind"], meta["name"]) == (FORMAT, KIND, "tiny")
    assert meta["training_data"]["dataset"] == "tiny" and meta["training_data"]["homes"] == len(history.homes)
    assert artifacts.read_metadata(first)["metrics"] == {"auc": 0.75}
    assert loaded.get_params() == model.get_params() and loaded.horizons == model.horizons
    assert len(loaded.members_) == 2 and loaded.network_ is loaded.members_[0]
    np.testing.assert_array_equal(loaded.predict_proba(history, queries), model.predict_proba(history, queries))
    hidden = dict(hide_recency=True)
    np.testing.assert_array_equal(
        loaded.predict_proba(history, queries, **hidden), model.predict_proba(history, queries, **hidden)
    )
    np.testing.assert_array_equal(loaded.embed(history, hide_rooms=True), model.embed(history, hide_rooms=True))
    assert loaded.train_days_ == model.train_days_ and loaded.best_epochs_ == model.best_epochs_
    found, again = (
        find_hunches(history, model, days=2, threshold=0.0),
        find_hunches(history, loaded, days=2, threshold=0.0),
    )
    np.testing.assert_array_equal(found["score"].to_numpy(), again["score"].to_numpy())


@pytest.mark.parametrize("name", ["weights.safetensors", "model.json"])
def test_a_changed_or_missing_file_is_named(fitted, tmp_path, name):
    model, _, _ = fitted
    path = save_device_model(model, tmp_path, dataset="tiny")
    file = path / name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 1
    file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=str(file)):
        load_device_model(path)
    file.unlink()
    with pytest.raises(ArtifactError, match=f"{file} is missing"):
        load_device_model(path)


def test_a_folder_without_a_model_asks_for_training(tmp_path):
    with pytest.raises(MissingInputError, match="homeloop home train"):
        load_device_model(model_path(tmp_path, "nothing"))
    (tmp_path / KIND / "empty").mkdir(parents=True)
    with pytest.raises(MissingInputError, match="homeloop home train"):
        load_device_model(model_path(tmp_path, "empty"))


def test_metadata_that_does_not_fit_the_files_is_refused(fitted, tmp_path):
    model, _, _ = fitted
    path = save_device_model(model, tmp_path, dataset="tiny")
    meta = json.loads((path / "metadata.json").read_text())
    meta["details"]["members"] = 3
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="do not describe a device-state model"):
        load_device_model(path)
