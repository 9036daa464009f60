"""The demo report's section on graceful updates, and the demo's update of the NLU through the gate.

:func:`graceful_report_section` turns the figures of the experiments
(:func:`~homeloop.graceful.experiments.positive_congruent_experiment`,
:func:`~homeloop.graceful.bct.compatibility_experiment`, e.g. as
``benchmarks/graceful_updates.py --out`` writes them) and a gate verdict into
one :class:`homeloop.report.Section`, with an error-against-NFR figure.
:func:`demo_update` runs an update of the assistant's NLU through the gate on
a workspace; :func:`graceful_section` is what the demo shows: this run's update
beside the update experiments recorded by the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeloop.demo.recorded_figures import read_recorded
from homeloop.graceful.figures import error_vs_nfr_figure
from homeloop.report import Section
from homeloop.workspace import Workspace

__all__ = ["demo_update", "graceful_report_section", "graceful_section"]


def graceful_report_section(
    staging: Path,
    *,
    pc_results: Mapping[str, Any] | None = None,
    probe_results: Mapping[str, Any] | None = None,
    compatibility: Mapping[str, Any] | None = None,
    gate: Mapping[str, Any] | None = None,
) -> Section:
    """A :class:`homeloop.report.Section`: error against NFR for plain and PC training, the compatibility matrix
    M(query model, gallery model), and the gate's verdict on the demo's update.

    ``staging`` is the report folder (the figure is written there);
    ``pc_results`` maps a dataset to a ``positive_congruent_experiment`` result;
    ``probe_results`` maps a dataset to a ``probe_update_experiment`` result (means over seeds);
    ``compatibility`` maps a dataset to a ``compatibility_experiment`` result;
    ``gate`` is a :func:`demo_update` result (or a ``Proposal.as_dict()``).
    Parts left as None are left out.
    """
    section = Section("Graceful model updates")
    section.paragraphs.append(
        "A new model can be more accurate on average and still break what the old one got right: the negative "
        "flip rate (NFR) counts held-out utterances the old model read right and the new one reads wrong. "
        "Positive-congruent (PC) training distils from the old model where it was right; backward-compatible "
        "training (BCT) keeps new embeddings comparable with an index built by the old model; the update gate "
        "promotes a model only when it does not regress."
    )
    if pc_results:
        error_vs_nfr_figure(pc_results, staging / "graceful_nfr.png")
        rows = []
        for name, r in pc_results.items():
            for variant, e in r["variants"].items():
                nfr = e["negative_flip_rate"]
                rows.append(
                    [
                        name,
                        variant,
                        round(100 * e["error_rate"], 2),
                        f"{100 * nfr['value']:.2f} [{100 * nfr['low']:.2f}, {100 * nfr['high']:.2f}]",
                        round(e.get("nfr_ratio_to_plain") or 0.0, 2),
                        round(100 * e.get("error_change_vs_plain", 0.0), 2),
                    ]
                )
        section.tables.append(
            (
                "Updates of the NLU (old model: half the training data), scored on the test split",
                ["dataset", "update", "error %", "NFR % [95% CI]", "NFR / plain", "error vs plain (points)"],
                rows,
            )
        )
        section.figures.append(("graceful_nfr.png", "Error against negative flip rate, plain and PC training"))
    if probe_results:
        error_vs_nfr_figure(probe_results, staging / "graceful_nfr_probe.png")
        rows = [
            [
                name,
                variant,
                f"{100 * e['error_rate']:.2f} ± {100 * e['error_rate_std']:.2f}",
                f"{100 * e['negative_flip_rate']:.2f} ± {100 * e['negative_flip_rate_std']:.2f}",
                round(e.get("nfr_ratio_to_plain") or 0.0, 2),
                round(100 * e.get("error_change_vs_plain", 0.0), 2),
            ]
            for name, r in probe_results.items()
            for variant, e in r["variants"].items()
        ]
        seeds = max(len(r["seeds"]) for r in probe_results.values())
        section.tables.append(
            (
                f"Updates of a linear intent probe on MiniLM sentence vectors (old: half the training data), "
                f"mean ± std over {seeds} seeds",
                ["dataset", "update", "error %", "NFR %", "NFR / plain", "error vs plain (points)"],
                rows,
            )
        )
        section.figures.append(
            ("graceful_nfr_probe.png", "Error against negative flip rate of the probe updates (bars: one std)")
        )
    if compatibility:
        for name, c in compatibility.items():
            models = list(c["matrix"])
            rows = [
                [q, *("–" if c["matrix"][q][g] is None else round(100 * c["matrix"][q][g]["top1"], 2) for g in models)]
                for q in models
            ]
            section.tables.append(
                (
                    f"{name}: compatibility matrix M(query model, gallery model), 1-NN intent retrieval top-1 %",
                    ["query \\ gallery", *models],
                    rows,
                )
            )
        section.paragraphs.append(
            "In the compatibility matrix, the row <i>new-bct</i> against the column <i>old</i> is an index built "
            "with the old model queried by the upgraded one, without backfilling; <i>new</i> (plain training) shows "
            "what happens without BCT. <i>small-bct</i> is a small on-device model trained into the large model's space."
        )
    if gate:
        checks = gate.get("checks") or []
        section.paragraphs.append(
            f"The update gate on the demo's update (candidate version {gate.get('candidate_version')} against "
            f"version {gate.get('baseline_version')} in service): <b>{'passed' if gate.get('passed') else 'failed'}</b>."
        )
        if checks:
            section.tables.append(
                (
                    "Update gate checks",
                    ["check", "passed", "explanation"],
                    [[c["name"], "yes" if c["passed"] else "NO", c["message"]] for c in checks],
                )
            )
    return section


def demo_update(
    ws: Any,
    *,
    positive_congruent: bool = True,
    weight: float = 1.0,
    epochs: int | None = None,
    seed: int = 1,
    evaluation: str = "hwu64",
) -> dict[str, Any]:
    """Update the workspace's NLU through the gate: returns the proposal (as a dict) and whether it was promoted.

    The model in service (or, when nothing is promoted yet, the newest saved
    one, proposed and promoted first) is the old model; the candidate is a new
    fast NLU trained on HWU64 train with another seed, with PC training from
    the old model when ``positive_congruent``. It is saved, proposed and, if
    the gate passes, promoted.
    """
    from homeloop.datasets import load_hwu64
    from homeloop.db import ModelRegistry, open_database
    from homeloop.graceful.gate import promote, propose, serving_model_path
    from homeloop.graceful.pctraining import fit_positive_congruent
    from homeloop.nlu import IntentSlotModel, evaluate, load_model, save_model

    with open_database(ws.database_url) as db:
        in_service = ModelRegistry(db).promoted("nlu")
    if in_service is None:  # nothing in service yet: the newest saved model goes in first
        first = propose(ws, serving_model_path(ws), evaluation=evaluation)
        promote(ws, version=first.candidate.version)
    old = load_model(serving_model_path(ws))
    train = load_hwu64("train")
    model = IntentSlotModel(encoder="fast", epochs=epochs, seed=seed)
    if positive_congruent:
        fit_positive_congruent(model, train, old=old, weight=weight)
    else:
        model.fit(train)
    metrics = {k: v for k, v in evaluate(model, load_hwu64("test")).items() if not isinstance(v, dict)}
    candidate = save_model(
        model, ws.models, metrics=metrics, training_data={"name": "hwu64", "split": "train", "pc": positive_congruent}
    )
    proposal = propose(ws, candidate, evaluation=evaluation)
    promoted = False
    if proposal.decision.passed:
        promote(ws, version=proposal.candidate.version)
        promoted = True
    return {**proposal.as_dict(), "promoted": promoted, "positive_congruent": positive_congruent}


def graceful_section(ws: Workspace, staging: Path) -> tuple[Section, dict[str, Any]]:
    """A positive-congruent update of the NLU, proposed to the update gate and promoted only if it passes,
    shown beside the update experiments the benchmark recorded. Returns the section and the gate's summary."""
    gate = demo_update(ws)
    recorded = read_recorded("graceful_updates.json") or {}
    compatibility = {k: v for k, v in recorded.get("bct", {}).items() if "MiniLM" in k}
    section = graceful_report_section(
        staging,
        pc_results=recorded.get("pc_minilm_bcwi"),
        probe_results=recorded.get("pc_probe"),
        compatibility=compatibility or None,
        gate=gate,
    )
    if recorded:
        section.paragraphs.append(
            "The update experiments (the MiniLM NLU and probe updates, the compatibility matrix) were recorded by "
            "<code>benchmarks/graceful_updates.py</code> (<code>benchmarks/results/graceful_updates.json</code>), "
            "not re-measured by this demo run; BENCHMARKS.md has the exact commands. The gate's verdict is this run's."
        )
    else:
        section.paragraphs.append(
            "<b>Absent:</b> the recorded update experiments (<code>graceful_updates.json</code>) are not in this "
            "installation of homeloop, so this section shows only this run's gate verdict; "
            "<code>benchmarks/graceful_updates.py</code> reproduces them (BENCHMARKS.md has the exact commands)."
        )
    failed = [c["name"] for c in gate.get("checks", []) if not c["passed"]]
    return section, {"passed": gate.get("passed"), "promoted": gate.get("promoted"), "failed_checks": failed}
