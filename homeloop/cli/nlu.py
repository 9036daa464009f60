"""``homeloop nlu``: train, evaluate and try the assistant's intent and slot model on HWU64."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common

nlu_app = typer.Typer(help="The assistant's NLU: intent classification and slot tagging.", no_args_is_help=True)


class _ProgressCallback:
    """Shows epochs and the batches of the current epoch as rich progress bars (a training-loop callback)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.epochs = self.batches = None

    def on_train_begin(self, state: Any) -> None:
        self.epochs = self.bar.add_task("epochs", total=state.epochs)
        self.batches = self.bar.add_task("batches", total=state.batches_per_epoch)

    def on_epoch_begin(self, state: Any) -> None:
        self.bar.reset(self.batches, total=state.batches_per_epoch, description=f"epoch {state.epoch + 1}")

    def on_batch_end(self, state: Any) -> None:
        self.bar.update(self.batches, advance=1, description=f"epoch {state.epoch + 1} loss {state.loss:.3f}")

    def on_epoch_end(self, state: Any) -> None:
        self.bar.update(self.epochs, advance=1, description=f"epochs (last loss {state.epoch_loss:.3f})")


def _figures(metrics: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    figures = {k: v for k, v in metrics.items() if k != "per_intent_accuracy"}
    if as_json:
        figures["per_intent_accuracy"] = metrics["per_intent_accuracy"]
    return figures


def train(
    ctx: typer.Context,
    encoder: str = typer.Option("fast", "--encoder", help="Text encoder: fast (seconds on a CPU) or minilm."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Passes over the training data (default: the encoder's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Train on HWU64 train, evaluate on HWU64 test, and save a new model version in the workspace."""
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import ENCODERS, IntentSlotModel, evaluate, save_model

    if encoder not in ENCODERS:
        raise _common.fail(f"--encoder {encoder!r}: expected one of {', '.join(sorted(ENCODERS))}")
    ws = _common.workspace(ctx)
    train_set, test_set = load_hwu64("train"), load_hwu64("test")
    model = IntentSlotModel(encoder=encoder, epochs=epochs, seed=seed)
    started = time.perf_counter()
    with _common.progress() as bar:
        model.fit(train_set, callbacks=[_ProgressCallback(bar)])
    seconds = time.perf_counter() - started
    metrics = evaluate(model, test_set)
    path = save_model(
        model,
        ws.models,
        metrics={**metrics, "dataset": "hwu64", "split": "test"},
        training_data={"name": "hwu64", "split": "train"},
    )
    figures = {
        "encoder": encoder,
        "epochs": model.training_settings()["epochs"],
        "seed": seed,
        "train_examples": len(train_set),
        "training_seconds": round(seconds, 2),
        **_figures(metrics, as_json=as_json),
        "model_path": str(path),
    }
    _common.emit(figures, as_json=as_json, title="NLU trained on HWU64 train, scored on HWU64 test")


def evaluate_command(
    ctx: typer.Context,
    model_path: Path = typer.Argument(None, help="A saved model version (default: the latest in the workspace)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Score a saved model on HWU64 test: intent accuracy and span-level slot F1."""
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.errors import HomeloopError
    from homeloop.nlu import evaluate, latest_model_path, load_model

    try:
        path = model_path if model_path is not None else latest_model_path(_common.workspace(ctx).models)
        model = load_model(path)
    except HomeloopError as exc:
        raise _common.fail(str(exc)) from None
    metrics = evaluate(model, load_hwu64("test"))
    figures = {"model_path": str(model.path_), "encoder": model.encoder, **_figures(metrics, as_json=as_json)}
    _common.emit(figures, as_json=as_json, title="NLU on HWU64 test")


def predict_command(
    ctx: typer.Context,
    texts: list[str] = typer.Argument(..., help="Utterances to read."),
    model_path: Path = typer.Option(None, "--model", help="A saved model version (default: the latest)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Read utterances with a saved model: intent, confidence and slots."""
    from homeloop.errors import HomeloopError
    from homeloop.nlu import latest_model_path, load_model

    try:
        path = model_path if model_path is not None else latest_model_path(_common.workspace(ctx).models)
        model = load_model(path)
    except HomeloopError as exc:
        raise _common.fail(str(exc)) from None
    predictions = model.predict(texts)
    figures = {
        text: {"intent": p.intent, "confidence": p.confidence, "slots": [[name, value] for name, value in p.slots]}
        for text, p in zip(texts, predictions, strict=True)
    }
    _common.emit(figures, as_json=as_json, title=f"NLU readings ({model.path_})")


nlu_app.command("train")(train)
nlu_app.command("evaluate")(evaluate_command)
nlu_app.command("predict")(predict_command)


def register(app: typer.Typer) -> None:
    app.add_typer(nlu_app, name="nlu")
