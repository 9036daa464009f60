"""``homeloop models``: the update gate: propose a candidate, promote it, roll back, list the registry."""

from __future__ import annotations

from pathlib import Path

import typer

from homeloop.cli import _common

app = _common.commands(
    "models",
    help="The model registry and its update gate: a new model goes into service only if it does not regress.",
)

NAME_OPTION = typer.Option("nlu", "--name", help="Registered model name.")


@app.command("propose")
def propose_command(
    ctx: typer.Context,
    candidate: Path = typer.Argument(..., help="A saved NLU version folder, e.g. homeloop-workspace/models/nlu/nlu/v2."),
    name: str = NAME_OPTION,
    evaluation: str = typer.Option("hwu64", "--evaluation", help="Held-out set: hwu64 or clinc150."),
    max_nfr: float = _common.MAX_NFR_OPTION,
    max_error_increase: float = _common.MAX_ERROR_OPTION,
    max_slice_drop: float = _common.MAX_SLICE_DROP_OPTION,
    min_slice_size: int = _common.MIN_SLICE_SIZE_OPTION,
    slicing: str = _common.SLICING_OPTION,
    significance: float = _common.SIGNIFICANCE_OPTION,
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Score CANDIDATE against the model in service (accuracy, NFR with its interval, slices); record the verdict."""
    from homeloop.graceful.gate import propose

    thresholds = _common.gate_thresholds(
        max_nfr=max_nfr,
        max_error_increase=max_error_increase,
        max_slice_drop=max_slice_drop,
        min_slice_size=min_slice_size,
        slicing=slicing,
        significance=significance,
    )
    ws = _common.workspace(ctx)
    with _common.progress(quiet=as_json) as bar, _common.Steps(bar, 1).step("scoring against the model in service"):
        proposal = propose(ws, candidate, name=name, evaluation=evaluation, thresholds=thresholds)
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
    if as_json:
        figures["explanation"] = proposal.decision.explain()
    else:
        figures.pop("checks")
        _common.console.print(proposal.decision.explain())
    _common.emit(figures, as_json=as_json, title=f"gate: {'PASSED' if proposal.decision.passed else 'FAILED'}")


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    name: str = NAME_OPTION,
    version: int = typer.Option(None, "--version", min=1, help="Version to promote (default: the last proposed)."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate fails (logged, loudly warned)."),
    max_nfr: float = _common.MAX_NFR_OPTION,
    max_error_increase: float = _common.MAX_ERROR_OPTION,
    max_slice_drop: float = _common.MAX_SLICE_DROP_OPTION,
    min_slice_size: int = _common.MIN_SLICE_SIZE_OPTION,
    slicing: str = _common.SLICING_OPTION,
    significance: float = _common.SIGNIFICANCE_OPTION,
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Put the proposed candidate into service; refuses (exit 2, reasons given) when the update gate fails."""
    from homeloop.graceful.gate import promote

    thresholds = _common.gate_thresholds(
        max_nfr=max_nfr,
        max_error_increase=max_error_increase,
        max_slice_drop=max_slice_drop,
        min_slice_size=min_slice_size,
        slicing=slicing,
        significance=significance,
    )
    record, decision = promote(_common.workspace(ctx), name=name, version=version, thresholds=thresholds, force=force)
    figures = {**record.as_dict(), "gate_passed": decision.passed, "explanation": decision.explain()}
    _common.emit(figures, as_json=as_json, title=f"{name} version {record.version} in service")


@app.command("rollback")
def rollback_command(ctx: typer.Context, name: str = NAME_OPTION, as_json: bool = _common.JSON_OPTION) -> None:
    """Take the version in service out and put back the one it replaced (atomically)."""
    from homeloop.graceful.gate import rollback

    record = rollback(_common.workspace(ctx), name=name)
    _common.emit(record.as_dict(), as_json=as_json, title=f"{name}: rolled back to version {record.version}")


@app.command("interpolate")
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

    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 2)
        with steps.step("loading OLD and NEW"):
            old_model, new_model = load_model(old), load_model(new)
        with steps.step("interpolating and saving"):
            path = save_model(
                interpolate_models(old_model, new_model, old_weight), _common.workspace(ctx).models, name=name
            )
    _common.emit(
        {"path": str(path), "old": str(old), "new": str(new), "old_weight": old_weight},
        as_json=as_json,
        title=f"interpolated candidate saved (propose it with: homeloop models propose {path})",
    )


@app.command("list")
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
