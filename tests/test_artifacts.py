"""The artefact store: every model kind saved and loaded through one layout, one schema, no pickles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from homeloop import artifacts
from homeloop.errors import ArtifactError, MissingInputError
from tests.contract import all_examples

FORMATS = sorted(artifacts.FORMAT_MODULES)
_SCHEMA = {
    "format", "format_version", "kind", "name", "version", "homeloop_version", "libraries", "parameters",
    "training_data", "metrics", "created", "details",
}  # fmt: skip


def _fitted_example(format_name: str):
    fmt = artifacts.format_named(format_name)
    examples = all_examples()
    if fmt.estimator.__name__ not in examples:
        pytest.fail(f"format {format_name}: no contract example for {fmt.estimator.__name__} in tests/contract/")
    example = examples[fmt.estimator.__name__]()
    return fmt, example, example.make().fit(*example.fit_args, **example.fit_kwargs)


def _outputs(model, example):
    for method in ("predict_proba", "predict", "transform"):
        if callable(getattr(model, method, None)):
            out = getattr(model, method)(*example.predict_args)
            return np.asarray(out) if not isinstance(out, list) else out
    raise AssertionError(f"{type(model).__name__} has nothing to predict with")


@pytest.mark.parametrize("format_name", FORMATS)
def test_every_format_round_trips_through_the_one_store(format_name, tmp_path):
    fmt, example, model = _fitted_example(format_name)
    path = artifacts.save(model, tmp_path, metrics={"score": 0.5}, training_data={"name": "tiny"})
    assert path == tmp_path / fmt.kind / fmt.default_name / "v1"
    meta = json.loads((path / "metadata.json").read_text())
    assert set(meta) == _SCHEMA
    assert (meta["format"], meta["format_version"], meta["kind"]) == (fmt.name, fmt.version, fmt.kind)
    assert meta["metrics"] == {"score": 0.5} and meta["training_data"]["name"] == "tiny"
    loaded = artifacts.load(tmp_path / fmt.kind / fmt.default_name)  # the folder of versions: the newest
    assert type(loaded) is type(model) and loaded.path_ == path and loaded.metadata_["version"] == 1
    before, after = _outputs(model, example), _outputs(loaded, example)
    if isinstance(before, np.ndarray):
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    else:
        assert after == before
    assert loaded.get_params() == model.get_params()
    files = [p for p in path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".pt", ".pth", ".joblib")], files


def test_saving_needs_a_fitted_model_with_a_format(tmp_path):
    with pytest.raises(ArtifactError, match="no artefact format saves a dict"):
        artifacts.save({}, tmp_path)


def test_a_name_belongs_to_one_kind_and_a_failed_save_leaves_nothing(tmp_path):
    fmt, _, model = _fitted_example("homeloop.nlu.intent_slot")
    artifacts.save(model, tmp_path, name="shared")
    (tmp_path / "defects" / "shared" / "v1").mkdir(parents=True)
    with pytest.raises(ArtifactError, match=r"'shared' is already used by a 'defects' model"):
        artifacts.save(model, tmp_path, name="shared")
    with pytest.raises(ArtifactError, match="model name 'bad/name'"):
        artifacts.save(model, tmp_path, name="bad/name")

    class Boom(type(fmt)):
        def write(self, model, folder):
            (folder / "half-written").write_text("x")
            raise OSError("disk full")

    original = artifacts.format_named(fmt.name)
    artifacts.register_format(Boom())
    try:
        with pytest.raises(OSError, match="disk full"):
            artifacts.save(model, tmp_path, name="nlu")
    finally:
        artifacts.register_format(original)
    assert list((tmp_path / "nlu" / "nlu").iterdir()) == []  # no version, no staging folder


def test_load_names_what_is_wrong(tmp_path):
    with pytest.raises(MissingInputError):
        artifacts.load(tmp_path / "nothing")
    folder = tmp_path / "x" / "y" / "v1"
    folder.mkdir(parents=True)
    with pytest.raises(ArtifactError, match=re.escape(str(folder / "metadata.json"))):
        artifacts.load(folder)
    (folder / "metadata.json").write_text(json.dumps({"format": "homeloop.pickle_jar", "format_version": 1}))
    with pytest.raises(ArtifactError, match="unknown artefact format 'homeloop.pickle_jar'"):
        artifacts.load(folder)
    (folder / "metadata.json").write_text(json.dumps({"format": "homeloop.nlu.intent_slot", "format_version": 99}))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported"):
        artifacts.load(folder)
    with pytest.raises(MissingInputError, match="train one first"):
        artifacts.latest(tmp_path, "nlu", "nlu")


def test_no_module_of_homeloop_pickles():
    root = Path(artifacts.__file__).resolve().parents[1]
    offenders = []
    for file in root.rglob("*.py"):
        text = file.read_text()
        if re.search(r"\bpickle\b|weights_only\s*=\s*False|torch\.save\(|joblib", text):
            offenders.append(str(file.relative_to(root)))
    assert not offenders, f"modules that pickle (saved models must not run code when loaded): {offenders}"
