"""Examples for the estimator conformance test (``tests/test_estimator_contract.py``).

Each room has a module ``examples_<room>.py`` with ``EXAMPLES = {"ClassName": example_fn}``; an
``example_fn()`` returns a :class:`ContractExample`: how to build the estimator with small
settings, what to fit it on, and what to predict on. An estimator class in ``homeloop`` with no
example fails the conformance test, so a new estimator cannot go unchecked.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ContractExample:
    make: Callable[[], Any]  # a fresh, unfitted estimator with small settings
    fit_args: tuple = ()
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    predict_args: tuple = ()  # arguments of predict / predict_proba / transform / score
    n_rows: int | None = None  # rows predict_proba should return for predict_args


def all_examples() -> dict[str, Callable[[], ContractExample]]:
    """Every room's examples, by estimator class name."""
    found: dict[str, Callable[[], ContractExample]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("examples_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for name, fn in module.EXAMPLES.items():
                if name in found:
                    raise AssertionError(f"two contract examples for {name} ({info.name} and another room)")
                found[name] = fn
    return found
