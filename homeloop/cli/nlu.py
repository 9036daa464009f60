"""``homeloop nlu``: train, evaluate and try the assistant's intent and slot model on HWU64."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common

app = _common.commands("nlu", help="The assistant's NLU: intent classification and slot tagging.")


def _figures(metrics: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    figures = {k: v for k, v in metrics.items() if k != "per_intent_accuracy"}
    if as_json:
        figures["per_intent_accuracy"] = metrics["per_intent_accuracy"]
    return figures


@app.command("train")
def train(
    ctx: typer.Context,
    encoder: str = typer.Option("fast", "--encoder", help="Text encoder: fast (seconds on a CPU) or minilm."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Passes over the training data (default: the encoder's)."),
    seed: int = _common.seed_option(),
    dp: bool = typer.Option(
        False,
        "--dp",
        help="Train with differential privacy (DP-SGD, homeloop.privacy); --encoder minilm keeps far more accuracy "
        "than fast (HWU64, epsilon 8: 0.81 against 0.41) at about 20 minutes on a CPU.",
    ),
    epsilon: float = typer.Option(8.0, "--epsilon", help="With --dp: the privacy budget epsilon."),
    delta: float = typer.Option(None, "--delta", help="With --dp: delta (default 1/n^1.1)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Train on HWU64 train, evaluate on HWU64 test, and save a new model version in the workspace."""
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import ENCODERS
    from homeloop.serving import train_assistant_nlu

    if encoder not in ENCODERS:
        _common.fail(f"--encoder {encoder!r}: expected one of {', '.join(sorted(ENCODERS))}")
    ws = _common.workspace(ctx)
    with _common.progress(quiet=as_json) as bar:
        if dp:
            from homeloop.privacy.nlu import train_private_assistant_nlu

            model, path, metrics = train_private_assistant_nlu(
                ws,
                target_epsilon=epsilon,
                delta=delta,
                encoder=encoder,
                epochs=epochs,
                seed=seed,
                callbacks=(_common.TrainingProgress(bar),),
            )
        else:
            model, path, metrics = train_assistant_nlu(
                ws, encoder=encoder, epochs=epochs, seed=seed, callbacks=(_common.TrainingProgress(bar),)
            )
    seconds = metrics.pop("training_seconds")
    train_set = load_hwu64("train")
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


def _load(ctx: typer.Context, model_path: Path | None):
    """The saved model at ``model_path``, or the one in service (raises a clear error when there is none)."""
    from homeloop.nlu import load_model

    return load_model(model_path if model_path is not None else _common.in_service(ctx))


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    model_path: Path = _common.model_option(),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Score a saved model (default: the one in service) on HWU64 test: intent accuracy and span-level slot F1."""
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import evaluate

    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 2)
        with steps.step("loading the model"):
            model = _load(ctx, model_path)
        with steps.step("scoring HWU64 test"):
            metrics = evaluate(model, load_hwu64("test"))
    figures = {"model_path": str(model.path_), "encoder": model.encoder, **_figures(metrics, as_json=as_json)}
    _common.emit(figures, as_json=as_json, title="NLU on HWU64 test")


@app.command("predict")
def predict_command(
    ctx: typer.Context,
    texts: list[str] = typer.Argument(..., help="Utterances to read."),
    model_path: Path = _common.model_option(),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Read utterances with a saved model (default: the one in service): intent, confidence and slots."""
    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 2)
        with steps.step("loading the model"):
            model = _load(ctx, model_path)
        with steps.step("reading"):
            predictions = model.parse(texts)
    figures = {
        text: {"intent": p.intent, "confidence": p.confidence, "slots": [[name, value] for name, value in p.slots]}
        for text, p in zip(texts, predictions, strict=True)
    }
    _common.emit(figures, as_json=as_json, title=f"NLU readings ({model.path_})")
