"""The demo report's section on defects found from implicit feedback, and the demo's defect step.

:func:`defects_report_section` shows the defects found in a dataset and how each implicit signal fared;
:func:`defects_section` is what the demo runs: train the defect model on the simulated ground truth, save
it, label the lake, and show the section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from homeloop.data.lake import Lake
from homeloop.report import Section
from homeloop.selflearn import (
    label_defects,
    latest_defect_model,
    rule_defects,
    save_defect_model,
    signals_from_lake,
    train_defect_model_on_truth,
    truth_labels,
)
from homeloop.selflearn.figures import defect_probability_figure
from homeloop.workspace import Workspace

__all__ = ["defects_report_section", "defects_section"]

_SIGNAL_NAMES = {
    "barge_in": "barge-in",
    "feedback_negative": "negative feedback",
    "response_error": "error response",
    "next_is_negation": "a 'no' next",
    "rephrase_follows": "rephrase within the window",
    "abandoned": "abandonment",
}


def defects_report_section(
    workspace,
    *,
    dataset: str = "sim",
    held_out: dict[str, Any] | None = None,
    report_dir: str | Path | None = None,
    examples: int = 8,
) -> Section:
    """A report section: defects found in ``dataset`` (the lake table ``defect_labels``, or, when it is not
    there yet, the newest saved defect model's or the rules' labels), how often each signal fired and, on
    simulated data, how precise each is; the model's held-out figures against the rules (``held_out``, as
    :func:`~homeloop.selflearn.train_defect_model_on_truth` returns them; default: those saved with the newest
    defect model); the most certain defects; and,
    with ``report_dir``, a figure of the defect probability for failed and successful turns."""
    lake = Lake(workspace.lake)
    signals = signals_from_lake(lake, dataset)
    if lake.has(dataset, "defect_labels"):
        labels = lake.read(dataset, "defect_labels").to_pandas().set_index("turn_id")
        source = "the lake table defect_labels"
    else:
        model = latest_defect_model(workspace.models)
        labels = label_defects(lake, dataset, model=model, signals=signals, write=False).to_pandas()
        labels = labels.set_index("turn_id")
        source = "the newest saved defect model" if model is not None else "the rules"
    labels = labels.reindex(signals["turn_id"])
    p = labels["p_defect"].fillna(0.0).to_numpy()
    flags = labels["defect"].fillna(False).to_numpy(dtype=bool)
    has_truth = lake.has(dataset, "truth_turns")
    y = truth_labels(lake, dataset, signals["turn_id"].tolist()) if has_truth else None

    section = Section("Defects found from implicit feedback")
    section.paragraphs.append(
        f"{len(signals):,} turns in {signals['session'].nunique():,} sessions of <code>{dataset}</code>; "
        f"{int(flags.sum()):,} ({flags.mean():.1%}) read as defects by {source}. No annotation is used: "
        "a defect shows in how the user reacts (barge-in, a 'no', a rephrase, giving up) and in what the "
        "assistant answered."
    )
    if y is not None:
        tp = int((flags & y).sum())
        section.paragraphs.append(
            f"Against the simulator's ground truth (kept apart, used only to measure): true defect rate "
            f"{y.mean():.1%}; the labels' precision {tp / max(1, flags.sum()):.1%}, recall {tp / max(1, y.sum()):.1%}."
        )
    if held_out is None:
        held_out = _latest_held_out(workspace.models)
    if held_out:
        rows = [
            [name, m.get("auc"), m["precision"], m["recall"], m["f1"]]
            for name, m in (("defect model", held_out["model"]), ("rules only", held_out["rules"]))
        ]
        section.tables.append(
            (
                f"Held-out homes ({held_out['test_turns']:,} turns of {held_out['test_homes']} homes the model never saw)",
                ["labeller", "AUC", "precision", "recall", "F1"],
                rows,
            )
        )
    fired_rows = []
    for column, name in _SIGNAL_NAMES.items():
        fired = signals[column].to_numpy(dtype=float) > 0
        row = [name, int(fired.sum()), f"{fired.mean():.1%}"]
        if y is not None:
            row.append(f"{y[fired].mean():.1%}" if fired.any() else "-")
        fired_rows.append(row)
    rules = rule_defects(signals)
    any_row = ["any rule", int(rules.sum()), f"{rules.mean():.1%}"]
    if y is not None:
        any_row.append(f"{y[rules].mean():.1%}" if rules.any() else "-")
    fired_rows.append(any_row)
    header = ["signal", "turns", "share"] + (["of which truly failed"] if y is not None else [])
    section.tables.append(("How often each implicit signal fired", header, fired_rows))
    order = np.argsort(-p, kind="stable")[:examples]
    example_rows = []
    for i in order:
        s = signals.iloc[i]
        fired = ", ".join(name for column, name in _SIGNAL_NAMES.items() if s[column] > 0) or "-"
        row = [s["text"] or "(empty)", fired, round(float(p[i]), 3)]
        if y is not None:
            row.append("failed" if y[i] else "succeeded")
        example_rows.append(row)
    section.tables.append(
        (
            "The turns most certainly defective",
            ["heard", "signals", "p(defect)"] + (["truth"] if y is not None else []),
            example_rows,
        )
    )
    if report_dir is not None and y is not None and len(np.unique(p)) > 2:
        name = "defect_probability.png"
        defect_probability_figure(p, y, Path(report_dir) / name)
        section.figures.append((name, "Defect probability of turns that failed and that succeeded (ground truth)"))
    return section


def _latest_held_out(models_dir) -> dict[str, Any] | None:
    """The held-out figures saved with the newest defect model, if any."""
    import json

    from homeloop.errors import MissingInputError
    from homeloop.nlu.artifacts import latest_model_path
    from homeloop.selflearn import DEFECT_MODEL_NAME

    try:
        meta = json.loads((latest_model_path(models_dir, name=DEFECT_MODEL_NAME) / "metadata.json").read_text())
    except (MissingInputError, OSError, ValueError):
        return None
    metrics = meta.get("metrics") or {}
    return metrics if {"model", "rules", "test_turns", "test_homes"} <= set(metrics) else None


def defects_section(ws: Workspace, dataset: str, staging: Path) -> tuple[Section, dict[str, Any]]:
    """Train the defect model on ``dataset``'s ground truth (held-out homes scored), save it, write its labels
    into the lake, and show the defects section; returns the section and the held-out figures."""
    lake = Lake(ws.lake)
    defect_model, held_out = train_defect_model_on_truth(lake, dataset)
    save_defect_model(defect_model, ws.models, metrics=held_out, training_data={"dataset": dataset})
    label_defects(lake, dataset, model=defect_model)
    return defects_report_section(ws, dataset=dataset, held_out=held_out, report_dir=staging), held_out
