"""``homeloop models``: the update gate: propose a candidate, promote it, roll back, list the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common

models_app = typer.Typer(
    help="The model registry and its update gate: a new model goes into service only if it does not regress.",
    no_args_is_help=True,
)

NAME_OPTION = typer.Option("nlu", "--name", help="Registered model name.")
MAX_NFR = typer.Option(None, "--max-nfr", help="Largest negative flip rate allowed (fraction, default 0.04).")
MAX_ERROR = typer.Option(None, "--max-error-increase", help="Error increase allowed (fraction, default 0.005).")
MAX_SLICE = typer.Option(None, "--max-slice-drop", help="Accuracy drop allowed on a slice (fraction, default 0.10).")
MIN_SLICE = typer.Option(None, "--min-slice-size", help="Slices smaller than this are not checked (default 30).")
SLICING = typer.Option(None, "--slicing", help="Slices checked: scenario (default) or intent.")
SIGNIFICANCE = typer.Option(None, "--significance", help="McNemar level that blocks a worse candidate (0: off).")


@contextmanager
def _errors() -> Iterator[None]:
    """homeloop's errors (a refusal of the gate, a bad path) as a one-line message and exit code 2."""
    from homeloop.errors import HomeloopError

    try:
        yield
    except HomeloopError as exc:
        raise _common.fail(str(exc)) from None


def _thresholds(**given: Any):
    from homeloop.graceful.gate import GateThresholds

    values = {k: v for k, v in given.items() if v is not None}
    return GateThresholds(**values) if values else None


def propose_command(
    ctx: typer.Context,
    candidate: Path = typer.Argument(..., help="A saved NLU version folder, e.g. homeloop-workspace/models/nlu/v2."),
    name: str = NAME_OPTION,
    evaluation: str = typer.Option("hwu64", "--evaluation", help="Held-out set: hwu64 or clinc150."),
    max_nfr: float = MAX_NFR,
    max_error_increase: float = MAX_ERROR,
    max_slice_drop: float = MAX_SLICE,
    min_slice_size: int = MIN_SLICE,
    slicing: str = SLICING,
    significance: float = SIGNIFICANCE,
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Score CANDIDATE against the model in service (accuracy, NFR with its interval, slices); record the verdict."""
    from homeloop.graceful.gate import propose

    thresholds = _thresholds(
        max_negative_flip_rate=max_nfr,
        max_error_increase=max_error_increase,
        max_slice_accuracy_drop=max_slice_drop,
        min_slice_size=min_slice_size,
        slicing=slicing,
        significance=significance,
    )
    with _errors():
        proposal = propose(_common.workspace(ctx), candidate, name=name, evaluation=evaluation, thresholds=thresholds)
    figures = proposal.as_dict()
    summary = proposal.decision.summary
    if summary.get("flips"):
        metrics = summary["flips"]["metrics"]
        figures["figures"] = {
            "baseline_error_rate": summary["baseline"]["error_rate"],
            "candidate_error_rate": summary["candidate"]["error_rate"],
            "negative_flip_rate": metrics["negative_flip_rate"],
            "positive_flip_rate": metrics["positive_flip_rate"]["value"],
            "negative_flip_impact": metrics["negative_flip_impact"]["value"],
            "relative_negative_flip_rate": metrics["relative_negative_flip_rate"]["value"],
            "mcnemar_p_value": summary["flips"]["mcnemar"]["p_value"],
        }
    if not as_json:
        figures.pop("checks")
        _common.console.print(proposal.decision.explain())
    _common.emit(figures, as_json=as_json, title=f"gate: {'PASSED' if proposal.decision.passed else 'FAILED'}")


def promote_command(
    ctx: typer.Context,
    name: str = NAME_OPTION,
    version: int = typer.Option(None, "--version", min=1, help="Version to promote (default: the last proposed)."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate fails (logged, loudly warned)."),
    max_nfr: float = MAX_NFR,
    max_error_increase: float = MAX_ERROR,
    max_slice_drop: float = MAX_SLICE,
    min_slice_size: int = MIN_SLICE,
    slicing: str = SLICING,
    significance: float = SIGNIFICANCE,
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Put the proposed candidate into service; refuses (exit 2, reasons given) when the update gate fails."""
    from homeloop.graceful.gate import promote

    thresholds = _thresholds(
        max_negative_flip_rate=max_nfr,
        max_error_increase=max_error_increase,
        max_slice_accuracy_drop=max_slice_drop,
        min_slice_size=min_slice_size,
        slicing=slicing,
        significance=significance,
    )
    with _errors():
        record, decision = promote(
            _common.workspace(ctx), name=name, version=version, thresholds=thresholds, force=force
        )
    figures = {**record.as_dict(), "gate_passed": decision.passed, "explanation": decision.explain()}
    _common.emit(figures, as_json=as_json, title=f"{name} version {record.version} in service")


def rollback_command(ctx: typer.Context, name: str = NAME_OPTION, as_json: bool = _common.JSON_OPTION) -> None:
    """Take the version in service out and put back the one it replaced (atomically)."""
    from homeloop.graceful.gate import rollback

    with _errors():
        record = rollback(_common.workspace(ctx), name=name)
    _common.emit(record.as_dict(), as_json=as_json, title=f"{name}: rolled back to version {record.version}")


def interpolate_command(
    ctx: typer.Context,
    old: Path = typer.Argument(..., help="The saved NLU version in service (or any older one)."),
    new: Path = typer.Argument(..., help="The retrained NLU: same encoder and the OLD model's seed."),
    old_weight: float = typer.Option(0.5, "--old-weight", min=0.0, max=1.0, help="How far back towards OLD (0-1)."),
    name: str = typer.Option("nlu", "--name", help="Save the result as the next version of this model name."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Backward-compatible weight interpolation (BCWI): save NEW moved OLD-WEIGHT of the way back to OLD, as a
    candidate to propose. It cuts negative flips only if NEW was trained from OLD's starting point (the same
    pretrained encoder and the same --seed); see BENCHMARKS.md."""
    from homeloop.graceful.interpolation import interpolate_models
    from homeloop.nlu import load_model, save_model

    with _errors():
        mixed = interpolate_models(load_model(old), load_model(new), old_weight)
        path = save_model(mixed, _common.workspace(ctx).models, name=name)
    _common.emit(
        {"path": str(path), "old": str(old), "new": str(new), "old_weight": old_weight},
        as_json=as_json,
        title=f"interpolated candidate saved (propose it with: homeloop models propose {path})",
    )


def list_command(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", help="Only this model (default: all)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Every registered model version with its status, and the gate's last verdict on it."""
    from homeloop.db import ModelRegistry, open_database

    ws = _common.workspace(ctx)
    with open_database(ws.database_url) as db:
        registry = ModelRegistry(db)
        rows = []
        for record in registry.list(name):
            report = registry.latest_gate_report(record.name, record.version)
            rows.append(
                {
                    "name": record.name,
                    "version": record.version,
                    "status": record.status.value,
                    "kind": record.kind,
                    "intent_accuracy": record.metrics.get("intent_accuracy"),
                    "gate": None if report is None else ("passed" if report.passed else "failed"),
                    "promoted_at": record.promoted_at.isoformat() if record.promoted_at else None,
                    "path": str(record.path),
                }
            )
    if as_json:
        _common.emit({"models": rows}, as_json=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="registered models")
    for column in ("name", "version", "status", "kind", "intent_accuracy", "gate", "promoted_at"):
        table.add_column(column)
    for row in rows:
        accuracy = row["intent_accuracy"]
        table.add_row(
            *(str(row[c]) for c in ("name", "version", "status", "kind")),
            f"{accuracy:.4f}" if isinstance(accuracy, float) else "–",
            str(row["gate"] or "–"),
            str(row["promoted_at"] or "–"),
        )
    Console().print(table)


models_app.command("propose")(propose_command)
models_app.command("promote")(promote_command)
models_app.command("rollback")(rollback_command)
models_app.command("list")(list_command)
models_app.command("interpolate")(interpolate_command)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
