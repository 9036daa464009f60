"""The assistant's models in service: the NLU the assistant serves, and training and registering a new one.

:func:`assistant_nlu` loads the workspace's NLU in service (or trains one when there is none);
:func:`train_assistant_nlu` trains the assistant's NLU on HWU64, saves it as the next version and
registers it in the model registry. The commands that need the assistant's NLU (``homeloop nlu
train``, ``homeloop simulate``, ``homeloop evaluate rewrites``) and the demo call these.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from homeloop import artifacts
from homeloop.datasets import load_hwu64
from homeloop.errors import MissingInputError
from homeloop.nlu import IntentSlotModel, evaluate
from homeloop.nlu.artifacts import load_model, save_model
from homeloop.workspace import Workspace

__all__ = ["assistant_nlu", "train_assistant_nlu"]


def train_assistant_nlu(
    ws: Workspace,
    *,
    encoder: str = "fast",
    epochs: int | None = None,
    seed: int = 0,
    callbacks: tuple = (),
) -> tuple[IntentSlotModel, Path, dict[str, Any]]:
    """Train the assistant's NLU on HWU64 train, score it on HWU64 test, save it as the next version with
    its metrics, and register it in the operational database's model registry."""
    started = time.perf_counter()
    model = IntentSlotModel(encoder=encoder, epochs=epochs, seed=seed).fit(load_hwu64("train"), callbacks=callbacks)
    seconds = time.perf_counter() - started
    metrics = {
        **evaluate(model, load_hwu64("test")),
        "dataset": "hwu64",
        "split": "test",
        "training_seconds": round(seconds, 2),
    }
    path = save_model(model, ws.models, metrics=metrics, training_data={"name": "hwu64", "split": "train"})
    artifacts.register(ws, path)
    return model, path, metrics


def assistant_nlu(
    ws: Workspace,
    *,
    encoder: str = "fast",
    retrain: bool = False,
    callbacks: tuple = (),
) -> tuple[IntentSlotModel, Path, dict[str, Any]]:
    """The assistant's NLU as served: the workspace's promoted model (the newest saved one while nothing is
    promoted), or a new one (:func:`train_assistant_nlu`)."""
    if not retrain:
        try:
            path = artifacts.in_service(ws, "nlu", "nlu")
        except MissingInputError:
            pass
        else:
            metrics = artifacts.read_metadata(path).get("metrics", {})
            return load_model(path), path, metrics
    return train_assistant_nlu(ws, encoder=encoder, callbacks=callbacks)
