"""Figures of the privacy benchmarks: accuracy against epsilon, attacks against epsilon, the cost of privacy
against the amount of training data.

Each takes the figures a benchmark wrote (``benchmarks/dp_utility.py --out``, ``benchmarks/privacy_attacks.py
--out``, ``dp_utility.py --train-fractions``) as a dict and draws one PNG; the demo report's privacy section
shows them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = [
    "accuracy_epsilon_figure",
    "attacks_epsilon_figure",
    "data_size_figure",
    "data_size_rows",
    "epsilon_label",
]


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


def epsilon_label(eps: Any) -> str:
    """An epsilon for a table: the number, or "none (non-private)" for the non-private run."""
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


def accuracy_epsilon_figure(utility: dict[str, Any], path: Path) -> Path:
    """Intent accuracy against epsilon, one line per dataset and model (a ``dp_utility.py`` run)."""
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


def data_size_rows(data_size: dict[str, Any]) -> list[dict[str, Any]]:
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


def data_size_figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """Points below non-private against training examples per intent, one line per epsilon (rows from
    :func:`data_size_rows`)."""
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


def attacks_epsilon_figure(attacks: dict[str, Any], path: Path) -> Path:
    """Membership inference and the empirical against the accountant's epsilon (a ``privacy_attacks.py`` run)."""
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
