"""``homeloop home``: device embeddings, state prediction, hunches, rooms and archetypes for a smart home.

A Home Assistant user goes from a recorder database to hunches and automation suggestions with::

    homeloop home ingest <config>/home-assistant_v2.db --registry <config>/.storage
    homeloop home train
    homeloop home hunches --output suggested_automations.yaml
    homeloop home rooms
    homeloop home archetypes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common
from homeloop.cli.ingest import home_assistant

app = _common.commands("home", help="Smart home: device embeddings, state prediction, hunches, rooms and archetypes.")
_DATASET = typer.Option("home-assistant", "--dataset", help="Lake dataset holding devices and device events.")

app.command("ingest", help="Ingest a Home Assistant recorder database and its registries (as "
            "'homeloop ingest home-assistant').")(home_assistant)  # fmt: skip


def _history(ctx: typer.Context, dataset: str, slot_minutes: int = 10):
    from homeloop.data.lake import Lake
    from homeloop.home.features import load_history

    return load_history(Lake(_common.workspace(ctx).lake), dataset, slot_minutes=slot_minutes)


def _model(ctx: typer.Context, dataset: str):
    """The device model of ``dataset`` in service (promoted, else the newest saved)."""
    from homeloop import artifacts
    from homeloop.home.artifacts import KIND
    from homeloop.home.pipeline import load_device_model

    return load_device_model(artifacts.in_service(_common.workspace(ctx), KIND, dataset))


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_strip(v) if isinstance(v, dict) else v) for k, v in d.items() if not str(k).startswith("_")}


@app.command()
def train(
    ctx: typer.Context,
    dataset: str = _DATASET,
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="Device-name encoder: minilm or hashing."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Most passes over the training queries (best kept)."),
    samples_per_device: int = typer.Option(600, "--samples-per-device", min=1, help="Training queries per device."),
    evaluate: bool = typer.Option(
        True, "--evaluate/--no-evaluate", help="First score on held-out later days against the baselines."
    ),
    train_fraction: float = typer.Option(0.7, "--train-fraction", help="Share of each home's days to train on."),
    ensemble: int = typer.Option(1, "--ensemble", min=1, help="Average this many models trained from other seeds."),
    refit: bool = typer.Option(
        True, "--refit/--no-refit", help="Retrain on all training days for the epochs the validation days chose."
    ),
    seed: int = _common.seed_option(),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Train the device-state model (device embeddings) on every home of DATASET and save it.

    With --evaluate (the default) a model trained on the leading days is first scored on the later days
    (ROC-AUC and Brier score) against the hour-of-week prior, last-state and hour-logistic baselines;
    the saved model is then trained on all days.
    """
    from homeloop.home.device_model import DeviceStateModel
    from homeloop.home.evaluation import evaluate_state_prediction
    from homeloop.home.pipeline import save_device_model
    from homeloop.home.text import TEXT_ENCODERS

    if text_encoder not in TEXT_ENCODERS:
        _common.fail(f"--text-encoder {text_encoder!r}: expected one of {', '.join(sorted(TEXT_ENCODERS))}")
    ws = _common.workspace(ctx)
    params = dict(
        text_encoder=text_encoder,
        epochs=epochs,
        samples_per_device=samples_per_device,
        ensemble=ensemble,
        refit=refit,
        seed=seed,
    )
    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 3 if evaluate else 2)
        with steps.step("reading device history"):
            history = _history(ctx, dataset)
        figures: dict[str, Any] = {"dataset": dataset, "homes": len(history.homes), "devices": history.n_devices,
                                   "skipped": dict(history.skipped)}  # fmt: skip
        if evaluate:
            with steps.step("scoring on held-out days"):
                model = DeviceStateModel(**params)
                from homeloop.home.features import split_days

                model.fit(history, split_days(history, train_fraction=train_fraction),
                          callbacks=(_common.TrainingProgress(bar),))  # fmt: skip
                result = evaluate_state_prediction(history, model=model)
                figures["held_out"] = _strip(result)
                figures["held_out"].pop("train_days", None)
        with steps.step("training on all days"):
            model = DeviceStateModel(**params).fit(history, callbacks=(_common.TrainingProgress(bar),))
    path = save_device_model(model, ws.models, dataset=dataset)
    figures["model"] = str(path)
    figures["best_epoch"] = model.best_epoch_
    figures["ensemble"], figures["refit"] = ensemble, refit
    _common.emit(figures, as_json=as_json, title=f"home train {dataset}")


@app.command()
def hunches(
    ctx: typer.Context,
    dataset: str = _DATASET,
    days: int = typer.Option(2, "--days", min=1, help="Look for hunches in the last DAYS days of each home."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="Least hunch score to report."),
    output: Path | None = _common.output_option("Write the suggested Home Assistant automations (YAML) here."),
    min_days: int = typer.Option(2, "--min-days", min=1, help="Suggest an automation after hunches on this many days."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Devices left on while the home looks asleep or away, and automations that would handle them."""
    from homeloop.home.automations import automations_yaml, suggest_automations
    from homeloop.home.pipeline import find_hunches

    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 3)
        with steps.step("reading device history"):
            history = _history(ctx, dataset)
        with steps.step("loading the device model"):
            model = _model(ctx, dataset)
        with steps.step("looking for hunches"):
            found = find_hunches(history, model, days=days, threshold=threshold)
    suggestions = suggest_automations(found, min_days=min_days)
    if output is not None:
        output.write_text(automations_yaml(suggestions), encoding="utf-8")
    figures = {
        "dataset": dataset,
        "hunches": [
            {
                "device_id": r.device_id,
                "name": r.name,
                "local_time": r.local_time.isoformat(timespec="minutes"),
                "expected_on": round(float(r.expected_on), 3),
                "p_asleep": round(float(r.p_asleep), 3),
                "p_away": round(float(r.p_away), 3),
                "score": round(float(r.score), 3),
            }
            for r in found.itertuples()
        ],  # fmt: skip
        "suggested_automations": [s.title for s in suggestions],
        "output": str(output) if output is not None else None,
    }
    if not as_json:
        figures["hunches"] = [f"{h['local_time']} {h['name']} (score {h['score']})" for h in figures["hunches"]]
    _common.emit(figures, as_json=as_json, title=f"home hunches {dataset}")


@app.command()
def rooms(
    ctx: typer.Context,
    dataset: str = _DATASET,
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Guess the rooms of devices without one, and measure leave-one-out accuracy on devices with one."""
    from homeloop.home.rooms import evaluate_rooms, infer_rooms

    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 4)
        with steps.step("reading device history"):
            fine = _history(ctx, dataset, slot_minutes=1)
            history = _history(ctx, dataset)
        with steps.step("embedding devices"):
            model = _model(ctx, dataset)
            embeddings = model.embed(history, hide_rooms=True, hide_names=True)
        with steps.step("guessing rooms"):
            guesses = infer_rooms(fine, embeddings=embeddings)
        with steps.step("leave-one-out accuracy"):
            evaluation = evaluate_rooms(fine, embeddings=embeddings)
    figures = {
        "dataset": dataset,
        "guesses": {
            g.device_id: {"room": g.room, "runner_up": g.runner_up, "margin": round(g.margin, 3)} for g in guesses
        },  # fmt: skip
        "leave_one_out": {k: v for k, v in evaluation.items() if k != "guesses"},
    }
    _common.emit(figures, as_json=as_json, title=f"home rooms {dataset}")


@app.command()
def archetypes(
    ctx: typer.Context,
    dataset: str = _DATASET,
    k: int | None = typer.Option(None, "--k", min=1, help="Number of archetypes (default about sqrt(devices/2))."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Cluster the device embeddings into usage archetypes, each titled by its most characteristic name."""
    import numpy as np

    from homeloop.home.archetypes import find_archetypes
    from homeloop.home.features import UsageAggregates, usage_features

    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 3)
        with steps.step("reading device history"):
            history = _history(ctx, dataset)
        with steps.step("embedding devices"):
            model = _model(ctx, dataset)
            table = history.device_table()
            active = table["has_events"].to_numpy(bool)
            emb = model.embed(history)[active]
            usage = usage_features(UsageAggregates.of(history, model.train_days_), np.flatnonzero(active))
            on_hours = np.expm1(usage[:, 193])
        with steps.step("clustering"):
            found = find_archetypes(emb, list(table["name"][active]), k=k, on_hours=on_hours)
    figures = {
        "dataset": dataset,
        "devices": int(active.sum()),
        "archetypes": found.table.to_dict(orient="records"),
    }
    _common.emit(figures, as_json=as_json, title=f"home archetypes {dataset}")
