"""Figures of the smart-home experiments: state prediction against the baselines, room inference, hunch
precision and recall, and one home's held-out days with its automatic actions.

Each takes the results of the smart-home experiments (a dict, as the demo's ``home_experiments`` returns
it; keys starting with ``_`` hold the objects the figures need) and writes one PNG; the device map is
:func:`homeloop.home.archetypes.plot_device_map`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from homeloop.home.features import DeviceHistory, split_days

__all__ = [
    "STATE_BASELINES",
    "hunch_precision_recall_figure",
    "hunch_timeline_figure",
    "rooms_figure",
    "state_prediction_figure",
]

#: the baselines the state-prediction figure and table show, in this order
STATE_BASELINES = ("hour_of_week_prior", "last_state_persists", "hour_logistic")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def state_prediction_figure(results: dict[str, Any], path: Path) -> Path:
    """ROC-AUC of the device-state model and the baselines on held-out days, per data set (and real house)."""
    plt = _plt()
    groups: list[tuple[str, dict[str, float]]] = []
    if "houses_state_prediction" in results:
        r = results["houses_state_prediction"]
        groups.append(("real houses (pooled)", {n: r[n]["auc"] for n in ("model", *STATE_BASELINES)}))
        for hid, v in (r.get("by_home") or {}).items():
            groups.append((hid, v))
    if "sim_state_prediction" in results:
        r = results["sim_state_prediction"]
        groups.append(("simulated homes", {n: r[n]["auc"] for n in ("model", *STATE_BASELINES)}))
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names = ["model", *STATE_BASELINES]
    colours = ["#1f77b4", "#bbbbbb", "#888888", "#555555"]
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        xs = np.arange(len(groups)) + i * width
        ax.bar(xs, [g[1].get(n, np.nan) for g in groups], width, label=n.replace("_", " "), color=colours[i])
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels([g[0] for g in groups], fontsize=8)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("ROC-AUC, held-out days")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rooms_figure(results: dict[str, Any], path: Path) -> Path:
    """Leave-one-out room accuracy: co-usage with embeddings, co-usage only, the most common room."""
    plt = _plt()
    rows = []
    for key, label in (("houseD_rooms", "house D"), ("sim_rooms", "simulated")):
        if key in results:
            r = results[key]
            rows.append((label, r["accuracy"], r["co_usage_only_accuracy"], r["most_common_room_accuracy"]))
    fig, ax = plt.subplots(figsize=(6, 3))
    labels = ["co-usage + embeddings", "co-usage only", "most common room"]
    for i, lab in enumerate(labels):
        ax.bar(np.arange(len(rows)) + i * 0.27, [r[i + 1] for r in rows], 0.27, label=lab)
    ax.set_xticks(np.arange(len(rows)) + 0.27)
    ax.set_xticklabels([r[0] for r in rows])
    ax.set_ylim(0, 1)
    ax.set_ylabel("leave-one-out room accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def hunch_precision_recall_figure(results: dict[str, Any], path: Path) -> Path:
    """Precision against recall of automatic actions for each hunch scorer, with its operating point."""
    plt = _plt()
    hres = results["_hunches"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name in ("rule", "scratch", "transfer"):
        c = hres[name]["_curve"]
        c = c[c["actions"] >= 3]
        ax.plot(c["recall"], c["precision"], label=name)
        op = hres[name]["actions_at_validation_threshold"]
        if op["actions"]:
            ax.scatter([op["recall"]], [op["precision"]], marker="o", s=25)
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("recall (forgotten devices acted on)")
    ax.set_ylabel("precision of automatic actions")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def hunch_timeline_figure(results: dict[str, Any], path: Path, *, days: int = 2) -> tuple[Path, str]:
    """Held-out days of the home with the most forgotten devices: devices on, home state, automatic actions and
    forgotten devices; returns the path and the home's id."""
    plt = _plt()
    sim: DeviceHistory = results["_sim"]
    hres = results["_hunches"]
    cands, labels = hres["_candidates"]["test"], hres["_labels"]["test"]
    scores = hres["_scores"]["test"]["transfer"]
    threshold = hres["transfer"]["actions_at_validation_threshold"]["threshold"]
    threshold = threshold if threshold < 1 else float(np.quantile(scores, 0.995)) if len(scores) else 1.0
    table = sim.device_table()
    home_of = table["home_id"].to_numpy()[cands.device]
    # the home with the most forgotten slots in the held-out days
    counts = pd.Series(labels).groupby(home_of).sum()
    home_id = counts.idxmax() if len(counts) and counts.max() > 0 else sim.homes[0].home_id
    h = sim.home(home_id)
    first = split_days(sim)[home_id]
    lo = first * h.slots_per_day
    hi = min(h.n_slots, lo + days * h.slots_per_day)
    rows = [r for r in range(len(h.devices)) if h.has_events[r]]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.6))
    state = results["_presence_labels"][home_id][lo:hi]
    for code, colour in ((1, "#fde0c5"), (2, "#d6e4f5")):
        runs = np.flatnonzero(np.diff(np.r_[0, (state == code).astype(int), 0]))
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            ax.axvspan(lo + a, lo + b, color=colour, lw=0)
    for y, r in enumerate(rows):
        on = h.on[r, lo:hi]
        runs = np.flatnonzero(np.diff(np.r_[0, on.astype(int), 0]))
        ax.broken_barh([(lo + a, b - a) for a, b in zip(runs[::2], runs[1::2], strict=True)], (y - 0.35, 0.7),
                       color="#4c72b0")  # fmt: skip
    at = {int(d): i for i, d in enumerate(table.index[table["home_id"] == home_id])}
    sel = (home_of == home_id) & (cands.slot >= lo) & (cands.slot < hi)
    first_fire = pd.DataFrame({"run": cands.run[sel], "slot": cands.slot[sel], "dev": cands.device[sel],
                               "score": scores[sel], "label": labels[sel]})  # fmt: skip
    fired = first_fire[first_fire["score"] >= threshold].sort_values("slot").groupby("run").head(1)
    for _, f in fired.iterrows():
        y = rows.index(at[int(f["dev"])]) if at.get(int(f["dev"])) in rows else None
        if y is not None:
            ax.scatter([f["slot"]], [y], marker="v", color="red" if f["label"] else "orange", s=50, zorder=3)
    forgot = first_fire[first_fire["label"] == 1].sort_values("slot").groupby("run").head(1)
    for _, f in forgot.iterrows():
        y = rows.index(at[int(f["dev"])]) if at.get(int(f["dev"])) in rows else None
        if y is not None:
            ax.scatter([f["slot"]], [y], marker="x", color="black", s=30, zorder=4)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([h.devices["name"].iloc[r] for r in rows], fontsize=7)
    ticks = np.arange(lo, hi + 1, 6 * (60 // h.slot_minutes))
    ax.set_xticks(ticks)
    ax.set_xticklabels([(h.slot_time(t)).strftime("%a %H:%M") for t in ticks], fontsize=7)
    ax.set_xlim(lo, hi)
    ax.set_title(f"{home_id}: devices on (blue), asleep (light blue), away (orange band); "
                 "automatic action (red: right, orange: wrong), forgotten (x)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, home_id
