"""The privacy section of the homeloop report: accuracy against epsilon, attacks against epsilon, speed ratios.

:func:`privacy_report_section` takes the JSON figures written by the three benchmarks
(``benchmarks/dp_utility.py --out``, ``benchmarks/privacy_attacks.py --out``, ``benchmarks/dp_speed.py
--json``) or the equivalent dicts, draws the figures into the report folder and returns a
:class:`homeloop.report.Section`. Any of them may be left out; ``data_size`` (a ``dp_utility.py
--train-fractions`` run) adds the cost of privacy against the amount of training data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["privacy_report_section"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _load(source: Any) -> dict[str, Any] | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return source
    path = Path(source)
    return json.loads(path.read_text()) if path.is_file() else None


def _eps_label(eps: Any) -> str:
    eps = _private(eps)
    return "none (non-private)" if eps is None else f"{eps:g}"


def _private(eps: Any) -> float | None:
    """The epsilon as a number, None for the non-private run."""
    eps = float(eps) if eps is not None else math.inf
    return None if math.isinf(eps) else eps


def _x(eps: Any) -> float:
    """Where an epsilon goes on a log axis (the non-private run at 32)."""
    eps = _private(eps)
    return 32.0 if eps is None else eps


def _accuracy_figure(utility: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for dataset, d in utility.get("datasets", {}).items():
        for kind, rows in d.items():
            if not isinstance(rows, list):
                continue
            rows = sorted(rows, key=lambda r: _x(r["epsilon"]))
            ax.plot(
                [_x(r["epsilon"]) for r in rows],
                [100 * r["intent_accuracy"] for r in rows],
                marker="o",
                label=f"{dataset}, {kind}",
            )
    ax.set_xscale("log")
    ticks = [1, 3, 8, 32]
    ax.set_xticks(ticks, ["1", "3", "8", "no DP"])
    ax.set_xlabel("epsilon (delta = 1/n^1.1)")
    ax.set_ylabel("intent accuracy, %")
    ax.set_title("Accuracy against the privacy budget")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _data_size_rows(data_size: dict[str, Any]) -> list[dict[str, Any]]:
    """(dataset, model, examples per intent, non-private accuracy, drop in points by epsilon), by dataset then size."""
    out = []
    for d in data_size.get("datasets", {}).values():
        for kind, rows in d.items():
            if isinstance(rows, list):
                out.append(
                    {
                        "dataset": d.get("dataset", "?"),
                        "model": kind,
                        "train_examples": d.get("train_examples"),
                        "per_intent": d["train_examples"] / max(1, d.get("intents") or 1),
                        "non_private": next(
                            (r["intent_accuracy"] for r in rows if _private(r["epsilon"]) is None), None
                        ),
                        "drops": {
                            _private(r["epsilon"]): r.get("drop_points")
                            for r in rows
                            if _private(r["epsilon"]) is not None
                        },
                    }
                )
    return sorted(out, key=lambda r: (r["dataset"], r["model"], r["per_intent"]))


def _data_size_figure(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.4, 3.6))
    epsilons = sorted({e for r in rows for e in r["drops"]}, reverse=True)
    series = list(dict.fromkeys((r["dataset"], r["model"]) for r in rows))
    for k, (dataset, model) in enumerate(series):
        mine = [r for r in rows if (r["dataset"], r["model"]) == (dataset, model)]
        for j, eps in enumerate(epsilons):
            points = [(r["per_intent"], r["drops"][eps]) for r in mine if r["drops"].get(eps) is not None]
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    color=f"C{j}",
                    ls=["-", "--", ":", "-."][k % 4],
                    marker="os^D"[k % 4],
                    label=f"{dataset} ({model}), epsilon {eps:g}",
                )
    ax.axhline(1.0, color="#999", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted({round(r["per_intent"]) for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("training examples per intent")
    ax.set_ylabel("points below non-private")
    ax.set_title("The cost of privacy shrinks with the data")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def _attack_figure(attacks: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    rows = sorted(attacks.get("rows", []), key=lambda r: _x(r["target_epsilon"]))
    xs = [_x(r["target_epsilon"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    left.plot(xs, [r["loss_attack"]["auc"] for r in rows], marker="o", label="loss threshold AUC")
    left.plot(xs, [r["lira_attack"]["auc"] for r in rows], marker="s", label="LiRA AUC")
    left.plot(xs, [r["lira_attack"]["tpr_at_0_1_fpr"] for r in rows], marker="^", label="LiRA TPR @ 0.1% FPR")
    left.axhline(0.5, color="#999", lw=0.8, ls="--")
    left.set_title("Membership inference")
    right.plot(xs, [r["empirical_epsilon"] for r in rows], marker="o", label="empirical lower bound")
    right.plot(
        [x for x, r in zip(xs, rows, strict=True) if math.isfinite(r["accountant_epsilon"])],
        [r["accountant_epsilon"] for r in rows if math.isfinite(r["accountant_epsilon"])],
        marker="s",
        label="accountant (PRV)",
    )
    right.plot(xs, [r["extraction_digits"] for r in rows], marker="^", label="canary digits extracted (share)")
    right.set_title("Epsilon: proven by attacks vs guaranteed")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks([1, 3, 8, 32], ["1", "3", "8", "no DP"])
        ax.set_xlabel("epsilon")
        ax.legend(fontsize=7)
    return _save(fig, path)


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
) -> Any:
    """A report :class:`~homeloop.report.Section` from the benchmarks' figures (dicts or JSON file paths;
    ``attacks`` and ``speed`` may also be lists of them, one audited recipe or one batch size each;
    ``data_size``: a ``dp_utility.py --train-fractions`` run); figures are written into ``folder`` (the report's
    staging folder)."""
    from homeloop.report import Section

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
                        [dataset, kind, _eps_label(r["epsilon"]), r["intent_accuracy"], r.get("drop_points")]
                        for r in rs
                    ]
            rows.append([dataset, "TF-IDF baseline (not private)", "-", d.get("tfidf_baseline_accuracy"), None])
        section.tables.append(
            ("Intent accuracy against epsilon", ["dataset", "model", "epsilon", "accuracy", "drop (points)"], rows)
        )
        section.figures.append(
            (_accuracy_figure(utility, folder / "privacy_accuracy_epsilon.png").name, "Accuracy against epsilon")
        )
    sized = _data_size_rows(data_size) if data_size else []
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
                _data_size_figure(sized, folder / "privacy_cost_data_size.png").name,
                "The cost of privacy against data size",
            )
        )
    for k, data in enumerate(filter(None, map(_load, attacks if isinstance(attacks, (list, tuple)) else [attacks]))):
        model = _attacked_model(data)
        rows = [
            [
                _eps_label(r["target_epsilon"]),
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
        section.figures.append((_attack_figure(data, folder / name).name, f"Attacks against epsilon, {model}"))
    return section
