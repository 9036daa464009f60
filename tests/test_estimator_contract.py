"""Every estimator in homeloop follows scikit-learn's contract (as scikit-learn's ``check_estimator`` checks).

Estimators are found by walking the package: a class defined in a homeloop module with a ``fit``,
``predict``, ``predict_proba`` or ``transform`` method, not a torch module. Each needs
an example in ``tests/contract/examples_<room>.py``; the checks:

- ``__init__`` takes keyword-only parameters, each with a default, and only stores them as given;
- ``get_params(deep=True)`` / ``set_params`` / ``sklearn.base.clone`` work;
- before ``fit``, predicting raises :class:`homeloop.errors.NotFittedError`;
- ``fit`` returns ``self``, leaves the parameters as they were, and adds only ``_``-suffixed
  (or private) attributes;
- ``predict_proba`` returns an (n, n_classes) array whose rows are distributions, and
  ``predict`` one label per row, drawn from ``classes_`` when the estimator has classes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import sklearn.base
import torch

import homeloop
from homeloop.errors import NotFittedError
from tests.contract import all_examples

_SKIP_MODULES = ("homeloop.datasets.vendor", "homeloop.cli")
_PREDICTING = ("predict", "predict_proba", "transform")


def _estimator_classes() -> list[type]:
    found = {}
    for info in pkgutil.walk_packages(homeloop.__path__, "homeloop."):
        if info.name.startswith(_SKIP_MODULES):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ != module.__name__ or issubclass(obj, torch.nn.Module):
                continue
            if getattr(obj, "_is_protocol", False):
                continue
            if any(callable(getattr(obj, m, None)) for m in ("fit", *_PREDICTING)):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


ESTIMATORS = _estimator_classes()
EXAMPLES = all_examples()
_FITTED: dict[type, object] = {}


def _id(cls: type) -> str:
    return cls.__name__


def _example(cls: type):
    if cls.__name__ not in EXAMPLES:
        pytest.fail(
            f"{cls.__module__}.{cls.__name__} is an estimator with no conformance example: add one to "
            f"tests/contract/examples_<room>.py"
        )
    return EXAMPLES[cls.__name__]()


def _fitted(cls: type):
    if cls not in _FITTED:
        example = _example(cls)
        _FITTED[cls] = example.make().fit(*example.fit_args, **example.fit_kwargs)
    return _FITTED[cls]


def _params(cls: type) -> list[inspect.Parameter]:
    return [p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return bool(a == b) if not (isinstance(a, float) and isinstance(b, float) and np.isnan(a)) else np.isnan(b)


def test_the_walk_finds_the_estimators():
    names = {cls.__name__ for cls in ESTIMATORS}
    assert {"IntentSlotModel", "IntentEmbedder", "DefectModel", "DeviceStateModel", "RewriteMiner"} <= names


def test_every_example_names_an_estimator():
    assert set(EXAMPLES) <= {cls.__name__ for cls in ESTIMATORS}, "an example names no estimator class"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=_id)
def test_init_takes_keyword_only_parameters_with_defaults_and_only_stores_them(cls):
    params = _params(cls)
    for p in params:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}.__init__: {p.name} is not keyword-only"
        assert p.default is not inspect.Parameter.empty, f"{cls.__name__}.__init__: {p.name} has no default"
    est = cls()
    assert set(vars(est)) == {p.name for p in params}, f"{cls.__name__}.__init__ sets more than its parameters"
    for p in params:
        assert getattr(est, p.name) is p.default, f"{cls.__name__}.__init__ changes {p.name} instead of storing it"
    made = _example(cls).make()
    assert set(vars(made)) == {p.name for p in params}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=_id)
def test_get_params_set_params_and_clone(cls):
    assert isinstance(cls(), sklearn.base.BaseEstimator), f"{cls.__name__} does not subclass BaseEstimator"
    est = _example(cls).make()
    params = est.get_params(deep=True)
    assert {p.name for p in _params(cls)} <= set(params)
    twin = sklearn.base.clone(est)
    assert type(twin) is cls and twin is not est
    assert all(_same(v, params[k]) for k, v in twin.get_params(deep=False).items())
    assert twin.set_params(**est.get_params(deep=False)) is twin


@pytest.mark.parametrize("cls", ESTIMATORS, ids=_id)
def test_predicting_before_fit_raises_not_fitted(cls):
    example = _example(cls)
    est = example.make()
    methods = [m for m in (*_PREDICTING, "score") if callable(getattr(est, m, None))]
    for method in methods:
        args = example.predict_args if method != "score" else (*example.predict_args, *example.fit_args[1:2])
        with pytest.raises(NotFittedError):
            getattr(est, method)(*args)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=_id)
def test_fit_returns_self_keeps_parameters_and_adds_trailing_underscore_state(cls):
    example = _example(cls)
    est = example.make()
    before = dict(vars(est))
    params = est.get_params(deep=False)
    assert est.fit(*example.fit_args, **example.fit_kwargs) is est
    after = est.get_params(deep=False)
    changed = [k for k in params if not _same(params[k], after[k])]
    assert not changed, f"{cls.__name__}.fit changed its parameter(s) {changed}"
    added = [k for k in vars(est) if k not in before]
    assert added, f"{cls.__name__}.fit learned nothing"
    public = [k for k in added if not k.endswith("_") and not k.startswith("_")]
    assert not public, f"{cls.__name__}.fit sets attributes without a trailing underscore: {public}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=_id)
def test_predict_proba_is_rows_by_classes_and_predict_gives_labels(cls):
    example = _example(cls)
    est = _fitted(cls)
    if callable(getattr(est, "predict_proba", None)):
        proba = est.predict_proba(*example.predict_args)
        assert isinstance(proba, np.ndarray) and proba.ndim == 2, f"{cls.__name__}.predict_proba: not a 2-d array"
        if example.n_rows is not None:
            assert proba.shape[0] == example.n_rows
        if hasattr(est, "classes_"):
            assert proba.shape[1] == len(est.classes_)
        assert np.all(proba >= -1e-6) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    if callable(getattr(est, "predict", None)):
        labels = est.predict(*example.predict_args)
        if example.n_rows is not None:
            assert len(labels) == example.n_rows
        if hasattr(est, "classes_") and callable(getattr(est, "predict_proba", None)):
            known = set(np.asarray(est.classes_).tolist())
            assert set(np.asarray(labels).tolist()) <= known
