"""``homeloop audit privacy``: measure how much a model's training recipe leaks, with real attacks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common

app = _common.commands("audit", help="Audit models: privacy leakage (and other audits).")


def _recipe(model: Any) -> dict[str, Any]:
    """Encoder, encoder settings, epochs and privacy target of a saved model."""
    meta = getattr(model, "metadata_", {}) or {}
    privacy = (meta.get("training_data") or {}).get("privacy") or {}
    params = model.get_params()
    return {
        "encoder": params.get("encoder", "fast"),
        "encoder_params": params.get("encoder_params") or None,
        "epochs": int(model.training_settings()["epochs"]),
        "target_epsilon": privacy.get("target_epsilon") or privacy.get("epsilon") or math.inf,
        "delta": privacy.get("delta"),
        "accountant_epsilon": privacy.get("epsilon", math.inf),
    }


@app.command("privacy")
def privacy_command(
    ctx: typer.Context,
    model_path: Path = _common.model_option("A saved NLU model version folder (default: the one in service)."),
    epsilons: list[float] = typer.Option(
        None,
        "--epsilon",
        help="Epsilons to audit the recipe at (repeatable; 'inf' = no privacy). Default: the "
        "model's own epsilon and inf.",
    ),
    members: int = typer.Option(1000, "--members", min=10, help="Training examples of each audited model."),
    shadows: int = typer.Option(4, "--shadows", min=1, help="Shadow models per epsilon (LiRA)."),
    canaries: int = typer.Option(5, "--canaries", min=1, help="Secrets planted in the training data."),
    repeats: int = typer.Option(8, "--repeats", min=1, help="Copies of each canary."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Training epochs (default: the model's)."),
    seed: int = _common.seed_option(),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Membership inference (loss threshold, LiRA), canary exposure and extraction, and an empirical lower
    bound on epsilon beside the accountant's, for the model's training recipe retrained on HWU64."""
    import numpy as np

    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import load_model
    from homeloop.privacy.audit import audit_privacy, true_label_probabilities
    from homeloop.privacy.membership import attack_metrics, loss_threshold_scores

    path = model_path if model_path is not None else _common.in_service(ctx)
    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 2)
        with steps.step("loading the model"):
            model = load_model(path)
            recipe = _recipe(model)
            targets = list(epsilons) if epsilons else sorted({float(recipe["target_epsilon"]), math.inf})
            train, test = load_hwu64("train"), load_hwu64("test")

        # the model as deployed: train (members) against test (non-members); not randomised, so no epsilon bound
        with steps.step("loss attack on the deployed model"):
            sample = train[:: max(1, len(train) // len(test))][: len(test)]
            p_in, p_out = true_label_probabilities(model, sample), true_label_probabilities(model, test)
            deployed = attack_metrics(
                loss_threshold_scores(-np.log(np.clip(p_in, 1e-12, None))),
                loss_threshold_scores(-np.log(np.clip(p_out, 1e-12, None))),
            ).as_dict()

        stages = len(targets) * (shadows + 2)
        task = bar.add_task("audit", total=stages)

        def on_stage(message: str) -> None:
            bar.update(task, advance=1, description=message)

        audit = audit_privacy(
            train,
            epsilons=targets,
            test=test,
            members=members,
            shadows=shadows,
            canaries=canaries,
            repeats=repeats,
            encoder=recipe["encoder"],
            encoder_params=recipe["encoder_params"],
            epochs=epochs or recipe["epochs"],
            delta=recipe["delta"],
            seed=seed,
            on_stage=on_stage,
        )
    figures: dict[str, Any] = {
        "model_path": str(path),
        "model_epsilon": recipe["accountant_epsilon"],
        "deployed_loss_attack_train_vs_test": deployed,
    }
    for row in audit.rows:
        key = f"epsilon {row.target_epsilon:g}"
        figures[key] = {
            "accountant_epsilon": row.accountant_epsilon,
            "accountant_epsilon_rdp": row.accountant_epsilon_rdp,
            "empirical_epsilon_lower_bound": row.empirical_epsilon,
            "loss_attack_auc": row.loss_attack["auc"],
            "loss_attack_tpr_at_0.1%_fpr": row.loss_attack["tpr_at_0_1_fpr"],
            "lira_auc": row.lira_attack["auc"],
            "lira_tpr_at_0.1%_fpr": row.lira_attack["tpr_at_0_1_fpr"],
            "canary_exposure_bits": row.canary_exposure,
            "canary_extraction_exact": row.extraction_exact,
            "canary_extraction_digits": row.extraction_digits,
            "test_accuracy": row.test_accuracy,
        }
    if as_json:
        figures["settings"] = audit.settings
        figures["rows"] = audit.as_dict()["rows"]
    _common.emit(figures, as_json=as_json, title=f"Privacy audit of {path}")
