"""The demo report's privacy section: accuracy against epsilon, attacks against epsilon, speed ratios.

:func:`privacy_report_section` takes the JSON figures written by the three benchmarks
(``benchmarks/dp_utility.py --out``, ``benchmarks/privacy_attacks.py --out``, ``benchmarks/dp_speed.py
--json``) or the equivalent dicts, draws the figures into the report folder and returns a
:class:`homeloop.report.Section`. Any of them may be left out; ``data_size`` (a ``dp_utility.py
--train-fractions`` run) adds the cost of privacy against the amount of training data.
:func:`recorded_privacy_section` builds it from the figures recorded with homeloop
(:mod:`homeloop.demo.recorded_figures`), as the demo shows them.
"""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from homeloop.demo.recorded_figures import read_recorded
from homeloop.privacy.figures import (
    accuracy_epsilon_figure,
    attacks_epsilon_figure,
    data_size_figure,
    data_size_rows,
    epsilon_label,
)
from homeloop.report import Section

__all__ = ["privacy_report_section", "recorded_privacy_section"]


def _load(source: Any) -> dict[str, Any] | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return source
    path = Path(source)
    return json.loads(path.read_text()) if path.is_file() else None


def _attacked_model(attacks: dict[str, Any]) -> str:
    settings = attacks.get("settings", {})
    recipe = settings.get("recipe", "nlu")
    if recipe == "nlu":
        return f"the NLU ({settings.get('encoder', 'fast')} encoder)"
    return "the linear probe on MiniLM vectors" if "probe" in recipe else str(recipe)


def privacy_report_section(
    folder: str | Path,
    *,
    utility: Any = None,
    attacks: Any = None,
    speed: Any = None,
    data_size: Any = None,
) -> Section:
    """A report :class:`~homeloop.report.Section` from the benchmarks' figures (dicts or JSON file paths;
    ``attacks`` and ``speed`` may also be lists of them, one audited recipe or one batch size each;
    ``data_size``: a ``dp_utility.py --train-fractions`` run); figures are written into ``folder`` (the report's
    staging folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    utility, data_size = _load(utility), _load(data_size)
    speed = [run for run in map(_load, speed if isinstance(speed, list) else [speed]) if run]
    section = Section(title="Privacy: differentially private training and measured leakage")
    section.paragraphs.append(
        "The assistant's NLU trains with DP-SGD through the same training loop as every model "
        "(<code>homeloop.privacy.make_private</code>: per-example clipping without a second backward pass, "
        "Poisson sampling, noise calibrated to a target epsilon with the PRV accountant and cross-checked with "
        "RDP). Leakage is measured by attacks on models retrained under the audit's control "
        "(<code>homeloop audit privacy</code>)."
    )
    for run in speed:
        rows = [
            [
                mode,
                r.get("seconds_per_step"),
                r.get("time_ratio"),
                r.get("cpu_ratio"),
                r.get("peak_ratio"),
                r.get("training_memory_ratio"),
            ]
            for mode, r in run.get("modes", {}).items()
        ]
        section.tables.append(
            (
                f"Speed, same model and batches ({run.get('encoder')}, batch {run.get('batch_size')}, "
                f"{run.get('machine')}); ratios against no privacy",
                ["mode", "s/step", "x time", "x CPU time", "x peak memory", "x training memory"],
                rows,
            )
        )
    if utility:
        rows = []
        for dataset, d in utility.get("datasets", {}).items():
            for kind, rs in d.items():
                if isinstance(rs, list):
                    rows += [
                        [dataset, kind, epsilon_label(r["epsilon"]), r["intent_accuracy"], r.get("drop_points")]
                        for r in rs
                    ]
            rows.append([dataset, "TF-IDF baseline (not private)", "-", d.get("tfidf_baseline_accuracy"), None])
        section.tables.append(
            ("Intent accuracy against epsilon", ["dataset", "model", "epsilon", "accuracy", "drop (points)"], rows)
        )
        section.figures.append(
            (accuracy_epsilon_figure(utility, folder / "privacy_accuracy_epsilon.png").name, "Accuracy against epsilon")
        )
    sized = data_size_rows(data_size) if data_size else []
    if sized:
        epsilons = sorted({e for r in sized for e in r["drops"]}, reverse=True)
        section.tables.append(
            (
                "The cost of privacy against the amount of training data (stratified fractions of each training "
                "split, same recipe, test split; points below the non-private model)",
                ["dataset", "model", "train examples", "per intent", "non-private accuracy"]
                + [f"drop at epsilon {e:g}" for e in epsilons],
                [
                    [r["dataset"], r["model"], r["train_examples"], round(r["per_intent"], 1), r["non_private"]]
                    + [r["drops"].get(e) for e in epsilons]
                    for r in sized
                ],
            )
        )
        section.figures.append(
            (
                data_size_figure(sized, folder / "privacy_cost_data_size.png").name,
                "The cost of privacy against data size",
            )
        )
    for k, data in enumerate(filter(None, map(_load, attacks if isinstance(attacks, (list, tuple)) else [attacks]))):
        model = _attacked_model(data)
        rows = [
            [
                epsilon_label(r["target_epsilon"]),
                r["accountant_epsilon"],
                r["empirical_epsilon"],
                r["loss_attack"]["auc"],
                r["loss_attack"]["tpr_at_0_1_fpr"],
                r["lira_attack"]["auc"],
                r["lira_attack"]["tpr_at_0_1_fpr"],
                r["canary_exposure"],
                r["extraction_exact"],
                r["extraction_digits"],
                r.get("test_accuracy"),
            ]
            for r in data.get("rows", [])
        ]
        settings = data.get("settings", {})
        section.tables.append(
            (
                f"Attacks against epsilon, {model} ({settings.get('members')} members, {settings.get('shadows')} "
                f"shadow models, canaries repeated {settings.get('repeats')} times; TPR at 0.1% FPR; empirical "
                "epsilon: 95% lower bound; exposure of log2(10^4) = 13.3 bits; extraction chance 0.0001 whole, "
                "0.1 per digit)",
                [
                    "epsilon",
                    "accountant eps",
                    "empirical eps",
                    "loss AUC",
                    "loss TPR",
                    "LiRA AUC",
                    "LiRA TPR",
                    "exposure",
                    "extracted",
                    "digits",
                    "test accuracy",
                ],
                rows,
            )
        )
        name = "privacy_attacks_epsilon.png" if k == 0 else f"privacy_attacks_epsilon_{k + 1}.png"
        section.figures.append((attacks_epsilon_figure(data, folder / name).name, f"Attacks against epsilon, {model}"))
    return section


#: the recorded files behind each part of the section (``attacks`` and ``speed``: one per recipe or batch size)
_PRIVACY_FILES = {
    "utility": ["dp_utility.json"],
    "attacks": ["privacy_attacks.json", "privacy_attacks_probe.json"],
    "speed": ["dp_speed_batch64.json", "dp_speed_batch256.json"],
    "data_size": ["dp_utility_data_size.json"],
}


def recorded_privacy_section(staging: Path, *, folder: Traversable | Path | None = None) -> Section:
    """The privacy section from the figures the privacy benchmarks recorded (hours of attacks and training are
    too long for the demo), read from ``folder`` (default: the copies shipped with homeloop); a figure that is
    not there is left out, and the section says so."""
    recorded = {name: read_recorded(name, folder) for names in _PRIVACY_FILES.values() for name in names}
    found = {key: [recorded[n] for n in names if recorded[n] is not None] for key, names in _PRIVACY_FILES.items()}
    found = {key: runs if key in ("attacks", "speed") else runs[0] for key, runs in found.items() if runs}
    missing = [name for name, figures in recorded.items() if figures is None]
    section = privacy_report_section(staging, **found)
    if found:
        section.paragraphs.append(
            f"Recorded by the benchmarks (<code>{', '.join(sorted(recorded))}</code> in "
            "<code>benchmarks/results</code>), not re-measured by this demo run; "
            "<code>python benchmarks/dp_utility.py [--train-fractions 0.25 0.5 1]</code>, <code>benchmarks/privacy_attacks.py [--model minilm-probe]</code> and "
            "<code>benchmarks/dp_speed.py [--batch-size 256]</code> reproduce them (BENCHMARKS.md has the exact commands)."
        )
    if missing:
        section.paragraphs.append(
            f"<b>Absent:</b> the recorded benchmark figures <code>{', '.join(sorted(missing))}</code> are not in this "
            "installation of homeloop, so this section leaves them out; the privacy benchmarks reproduce them "
            "(BENCHMARKS.md has the exact commands)."
        )
    return section
