"""``homeloop nlu``: train, evaluate and try the assistant's intent and slot model on HWU64."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common

nlu_app = typer.Typer(help="The assistant's NLU: intent classification and slot tagging.", no_args_is_help=True)


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
    from homeloop.errors import HomeloopError
    from homeloop.nlu import ENCODERS
    from homeloop.serving import train_assistant_nlu

    if encoder not in ENCODERS:
        raise _common.fail(f"--encoder {encoder!r}: expected one of {', '.join(sorted(ENCODERS))}")
    ws = _common.workspace(ctx)
    with _common.progress(quiet=as_json) as bar:
        if dp:
            from homeloop.privacy.nlu import train_private_assistant_nlu

            try:
                model, path, metrics = train_private_assistant_nlu(
                    ws,
                    target_epsilon=epsilon,
                    delta=delta,
                    encoder=encoder,
                    epochs=epochs,
                    seed=seed,
                    callbacks=(_common.TrainingProgress(bar),),
                )
            except HomeloopError as exc:
                raise _common.fail(str(exc)) from None
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
    """The saved model at ``model_path``, or the workspace's served one (promoted, else newest); a clear error
    when there is none."""
    from homeloop.errors import HomeloopError
    from homeloop.graceful.gate import serving_model_path
    from homeloop.nlu import load_model

    try:
        return load_model(model_path if model_path is not None else serving_model_path(_common.workspace(ctx)))
    except HomeloopError as exc:
        raise _common.fail(str(exc)) from None


def evaluate_command(
    ctx: typer.Context,
    model_path: Path = typer.Argument(None, help="A saved model version (default: the latest in the workspace)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Score a saved model on HWU64 test: intent accuracy and span-level slot F1."""
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import evaluate

    model = _load(ctx, model_path)
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

    model = _load(ctx, model_path)
    predictions = model.parse(texts)
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
