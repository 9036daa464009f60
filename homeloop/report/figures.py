"""Figures of the demo report (matplotlib, no screen needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["defects_by_failure_point", "device_timelines", "nlu_accuracy_by_scenario"]

_STAGES = ["wake_word", "asr", "nlu", "entity_resolution", "result"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def defects_by_failure_point(truth: pd.DataFrame, path: Path) -> Path:
    """Bar chart: share of requests failing at each component (first irrecoverable failure)."""
    req = truth[truth["kind"].isin(["request", "rephrase", "false_wake"])]
    counts = req["failure_point"].value_counts()
    shares = [counts.get(s, 0) / max(len(req), 1) for s in _STAGES]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    bars = ax.bar(_STAGES, [100 * s for s in shares], color="#c0504d")
    for bar, share in zip(bars, shares, strict=True):
        ax.annotate(
            f"{100 * share:.1f}%",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("% of requests")
    ax.set_title("Where requests failed first (simulator ground truth)")
    ax.tick_params(axis="x", labelsize=8)
    return _save(fig, path)


def device_timelines(
    events: pd.DataFrame,
    devices: pd.DataFrame,
    presence: pd.DataFrame,
    home_id: str,
    start: dt.datetime,
    end: dt.datetime,
    path: Path,
    *,
    hunches: pd.DataFrame | None = None,
) -> Path:
    """One home's devices over a window: on-intervals per device, shaded when everyone is asleep or away."""
    ev = events[(events["home_id"] == home_id)].sort_values("time")
    devs = devices[(devices["home_id"] == home_id) & (devices["type"] != "speaker")].sort_values("name")
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(len(devs), 3) + 1.2))
    colors = {"voice": "#4f81bd", "manual": "#9bbb59", "automation": "#8064a2", "unknown": "#7f7f7f"}
    for row, (_, d) in enumerate(devs.iterrows()):
        dev_ev = ev[ev["device_id"] == d["device_id"]]
        on_since, source = None, "unknown"
        spans = []
        for t, state, src in zip(dev_ev["time"], dev_ev["state"], dev_ev["source"], strict=True):
            is_on = state in ("on", "unlocked")
            if is_on and on_since is None:
                on_since, source = t, src
            elif not is_on and on_since is not None:
                spans.append((on_since, t, source))
                on_since = None
        if on_since is not None:  # still on when the events end
            spans.append((on_since, end, source))
        for lo, hi, src in spans:
            lo, hi = max(lo, start), min(hi, end)
            if hi > lo:
                ax.barh(
                    row,
                    mdates.date2num(hi) - mdates.date2num(lo),
                    left=mdates.date2num(lo),
                    height=0.6,
                    color=colors.get(src, "#7f7f7f"),
                )
    pres = presence[presence["home_id"] == home_id]
    if len(pres):
        n_res = pres["resident_id"].nunique()
        grid = pd.date_range(start, end, freq="10min", tz="UTC")
        for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
            cur = pres[(pres["start"] <= t0) & (pres["end"] > t0)]
            if len(cur) == n_res and (cur["state"] != "home").all():
                shade = "#dddddd" if (cur["state"] == "asleep").any() else "#f5e6c8"
                ax.axvspan(mdates.date2num(t0), mdates.date2num(t1), color=shade, zorder=0, lw=0)
    if hunches is not None and len(hunches):
        h = hunches[(hunches["home_id"] == home_id) & (hunches["time"] >= start) & (hunches["time"] <= end)]
        for _, x in h.iterrows():
            ax.axvline(mdates.date2num(x["time"]), color="red", lw=1)
    ax.set_yticks(range(len(devs)))
    ax.set_yticklabels(devs["name"], fontsize=8)
    ax.set_xlim(mdates.date2num(start), mdates.date2num(end))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M"))
    ax.tick_params(axis="x", labelsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    handles += [plt.Rectangle((0, 0), 1, 1, color="#dddddd"), plt.Rectangle((0, 0), 1, 1, color="#f5e6c8")]
    ax.legend(
        handles,
        [*colors, "all asleep", "all away"],
        fontsize=7,
        loc="upper center",
        ncols=6,
        bbox_to_anchor=(0.5, -0.12),
        frameon=False,
    )
    ax.set_title(f"Home {home_id}: device on-times (UTC) by source")
    return _save(fig, path)


def nlu_accuracy_by_scenario(per_intent: dict[str, float], counts: dict[str, int], path: Path) -> Path:
    """Intent accuracy per HWU64 scenario (weighted by test examples)."""
    by_scenario: dict[str, list[float]] = {}
    for intent, acc in per_intent.items():
        scenario = intent.split("_", 1)[0]
        n = counts.get(intent, 1)
        cur = by_scenario.setdefault(scenario, [0.0, 0.0])
        cur[0] += acc * n
        cur[1] += n
    items = sorted(((s, v[0] / v[1]) for s, v in by_scenario.items()), key=lambda x: x[1])
    fig, ax = plt.subplots(figsize=(6.4, 0.22 * len(items) + 1))
    ax.barh([s for s, _ in items], [100 * a for _, a in items], color="#4f81bd")
    ax.set_xlim(0, 100)
    ax.set_xlabel("intent accuracy on HWU64 test (%)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("The assistant's NLU by scenario")
    return _save(fig, path)
