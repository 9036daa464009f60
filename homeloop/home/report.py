"""The smart-home experiments end to end, their figures, and the report section.

:func:`home_experiments` runs every held-out measurement of :mod:`homeloop.home` on a
simulated dataset (with its ground truth) and, when given, on the real houses;
:func:`home_report_section` turns the results into a :class:`homeloop.report.Section`
(state prediction, device map, archetype table, one home's timeline with hunches,
rooms, hunch precision/recall). ``benchmarks/device_embeddings.py`` prints the same
figures.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from homeloop.home.archetypes import archetype_scores, find_archetypes, plot_device_map
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.evaluation import evaluate_state_prediction
from homeloop.home.features import DeviceHistory, UsageAggregates, load_history, split_days, usage_features
from homeloop.home.hunches import evaluate_hunches
from homeloop.home.presence import evaluate_home_state, home_embeddings, home_state_labels
from homeloop.home.rooms import evaluate_rooms

__all__ = ["home_experiments", "home_report_section"]

_BASELINES = ("hour_of_week_prior", "last_state_persists", "hour_logistic")


def _public(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _public(v) for k, v in d.items() if not str(k).startswith("_")}
    return d


def _on_hours(history: DeviceHistory, days, rows: np.ndarray) -> np.ndarray:
    return np.expm1(usage_features(UsageAggregates.of(history, days), rows)[:, 193])


def home_experiments(
    lake: Any,
    *,
    dataset: str = "sim",
    houses_dataset: str | None = "houses",
    text_encoder: str = "minilm",
    epochs: int = 10,
    samples_per_device: int = 600,
    train_fraction: float = 0.7,
    refit: bool = True,
    houses_ensemble: int = 5,
    home_state_only: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every held-out figure of the smart-home capability. Keys starting with ``_`` hold objects for figures.

    ``refit`` trains each state model again on all its training days for the epochs its validation days
    chose; the real houses' state model averages ``houses_ensemble`` models (cheap: 86 devices). Both
    settings were chosen on the houses' training days alone (their last 30% as validation).
    ``home_state_only`` skips the real houses, archetypes, rooms and hunches.
    """
    params = dict(
        text_encoder=text_encoder, epochs=epochs, samples_per_device=samples_per_device, refit=refit, seed=seed
    )
    out: dict[str, Any] = {"params": dict(params, train_fraction=train_fraction, houses_ensemble=houses_ensemble)}
    timings: dict[str, float] = {}
    # ---------------------------------------------------------------- real houses
    if houses_dataset is not None and not home_state_only and lake.has(houses_dataset, "device_events"):
        t = time.perf_counter()
        houses = load_history(lake, houses_dataset)
        hdays = split_days(houses, train_fraction=train_fraction)
        hmodel = DeviceStateModel(**params, ensemble=houses_ensemble).fit(houses, hdays)
        res = evaluate_state_prediction(houses, model=hmodel, train_days=hdays, seed=seed + 1)
        out["houses_state_prediction"] = _public(res)
        out["houses_state_prediction"].pop("train_days", None)
        log(f"houses: model AUC {res['model']['auc']:.3f}, gain {res['auc_gain_over_best_baseline']:+.3f}")
        if any(h.home_id == "houseD" for h in houses.homes):
            fine = load_history(lake, houses_dataset, slot_minutes=1).subset(["houseD"])
            emb = hmodel.embed(houses, hide_rooms=True, hide_names=True)
            d_rows = [i for i, hid in enumerate(houses.device_table()["home_id"]) if hid == "houseD"]
            rooms_d = evaluate_rooms(fine, embeddings=emb[d_rows])
            out["houseD_rooms"] = {k: v for k, v in rooms_d.items() if k != "guesses"}
            out["_houseD_guesses"] = rooms_d["guesses"]
            log(
                f"house D rooms: {rooms_d['accuracy']:.3f} (always the most common room {rooms_d['most_common_room_accuracy']:.3f})"
            )
        timings["houses"] = time.perf_counter() - t
    # ---------------------------------------------------------------- simulated homes
    if lake.has(dataset, "device_events"):
        t = time.perf_counter()
        sim = load_history(lake, dataset)
        days = split_days(sim, train_fraction=train_fraction)
        model = DeviceStateModel(**params).fit(sim, days)
        res = evaluate_state_prediction(sim, model=model, train_days=days, seed=seed + 1, queries_per_device=200)
        out["sim_state_prediction"] = _public(res)
        out["sim_state_prediction"].pop("train_days", None)
        out["sim_state_prediction"].pop("by_home", None)
        log(f"sim: model AUC {res['model']['auc']:.3f}, gain {res['auc_gain_over_best_baseline']:+.3f}")
        timings["sim_state"] = time.perf_counter() - t
        table = sim.device_table()
        active = table["has_events"].to_numpy(bool)
        emb_all = model.embed(sim)
        emb = emb_all[active]
        on_hours = _on_hours(sim, days, np.flatnonzero(active))
        names = list(table["name"][active])
        truth_dev = lake.read(dataset, "truth_devices").to_pandas() if lake.has(dataset, "truth_devices") else None
        found = find_archetypes(emb, names, on_hours=on_hours, seed=seed)
        out["_archetypes"], out["_embeddings"], out["_on_hours"] = found, emb, on_hours
        if truth_dev is not None and not home_state_only:
            arch = dict(zip(truth_dev["device_id"], truth_dev["archetype"], strict=True))
            ids = table["device_id"][active]
            keep = np.array([d in arch for d in ids])
            truth = [arch[d] for d in ids[keep]]
            raw = usage_features(UsageAggregates.of(sim, days), np.flatnonzero(active))
            raw_found = find_archetypes(
                (raw - raw.mean(0)) / (raw.std(0) + 1e-6), names, k=len(found.titles), seed=seed
            )
            out["archetypes"] = {
                "k": len(found.titles),
                "embeddings": archetype_scores(found.labels[keep], truth),
                "raw_usage_features": archetype_scores(raw_found.labels[keep], truth),
                "true_archetypes": len(set(truth)),
            }
            majority = []
            for c in range(len(found.titles)):
                members = [t for t, lab in zip(truth, found.labels[keep], strict=True) if lab == c]
                top = pd.Series(members).value_counts() if members else pd.Series(dtype=int)
                majority.append(f"{top.index[0]} ({top.iloc[0] / len(members):.0%})" if len(top) else "")
            found.table["true_archetype_majority"] = majority
            # rooms: every device, its name and room hidden in turn, against its true room
            rooms_truth = dict(zip(truth_dev["device_id"], truth_dev["true_room"], strict=True))
            fine = load_history(lake, dataset, slot_minutes=1)
            emb_hidden = model.embed(sim, hide_rooms=True, hide_names=True)
            rooms_sim = evaluate_rooms(fine, truth=rooms_truth, embeddings=emb_hidden)
            out["sim_rooms"] = {k: v for k, v in rooms_sim.items() if k != "guesses"}
            log(f"sim rooms: {rooms_sim['accuracy']:.3f}")
        timings["sim_archetypes_rooms"] = time.perf_counter() - t - timings["sim_state"]
        if lake.has(dataset, "truth_presence"):
            t2 = time.perf_counter()
            labels = home_state_labels(sim, lake.read(dataset, "truth_presence").to_pandas())
            out["home_state"] = evaluate_home_state(sim, labels, days, device_embeddings=emb_all, seed=seed)
            log(f"home state: {out['home_state']}")
            timings["sim_home_state"] = time.perf_counter() - t2
        if lake.has(dataset, "truth_presence") and not home_state_only:
            forgotten = lake.read(dataset, "truth_forgotten").to_pandas()
            hres = evaluate_hunches(sim, model, labels, forgotten, train_days=days, seed=seed,
                                    home_embeddings=home_embeddings(sim, emb_all))  # fmt: skip
            out["hunches"] = _public(hres)
            out["_hunches"] = hres
            out["_sim"] = sim
            out["_forgotten"] = forgotten
            out["_presence_labels"] = labels
            timings["sim_home_state_hunches"] = time.perf_counter() - t2
            log(f"hunches: {out['hunches']}")
    out["seconds"] = timings
    return out


# --------------------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _state_prediction_figure(results: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    groups: list[tuple[str, dict[str, float]]] = []
    if "houses_state_prediction" in results:
        r = results["houses_state_prediction"]
        groups.append(("real houses (pooled)", {n: r[n]["auc"] for n in ("model", *_BASELINES)}))
        for hid, v in (r.get("by_home") or {}).items():
            groups.append((hid, v))
    if "sim_state_prediction" in results:
        r = results["sim_state_prediction"]
        groups.append(("simulated homes", {n: r[n]["auc"] for n in ("model", *_BASELINES)}))
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names = ["model", *_BASELINES]
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


def _rooms_figure(results: dict[str, Any], path: Path) -> Path:
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


def _pr_figure(results: dict[str, Any], path: Path) -> Path:
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


def _timeline_figure(results: dict[str, Any], path: Path, *, days: int = 2) -> tuple[Path, str]:
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


def home_report_section(
    workspace: Any,
    figures_dir: Path,
    *,
    dataset: str = "sim",
    houses_dataset: str | None = "houses",
    results: dict[str, Any] | None = None,
    **experiment_params: Any,
):
    """The smart-home section of the demo report; figures are written into ``figures_dir`` (the report's folder).

    ``results`` from :func:`home_experiments` are reused when given; otherwise the
    experiments run on ``workspace``'s lake (``dataset`` simulated, ``houses_dataset`` real: the
    vendored houses A and D are ingested into it first when it is missing). ``experiment_params``
    go to :func:`home_experiments` (``text_encoder="hashing", samples_per_device=300, epochs=6`` for
    a quicker run).
    """
    from homeloop.data.lake import Lake
    from homeloop.report import Section

    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    if results is None:
        lake = Lake(workspace.lake)
        if houses_dataset is not None and not lake.has(houses_dataset, "device_events"):
            from homeloop.adapters.houses import ingest_houses

            ingest_houses(lake, ["A", "D"], dataset=houses_dataset)
        results = home_experiments(lake, dataset=dataset, houses_dataset=houses_dataset,
                                   **experiment_params)  # fmt: skip
    section = Section("Smart home: device embeddings, archetypes, rooms and hunches")
    section.paragraphs.append(
        "One encoder-decoder model is trained across all homes: the encoder turns each device's usage (on-probability "
        "by hour of day and week, activations, on-span lengths), its name (MiniLM), type and room into an embedding; "
        "the decoder predicts whether the device is on in a future 10-minute slot. All figures are on held-out later "
        "days (rooms: each device held out in turn)."
    )
    rows = []
    for key, label in (("houses_state_prediction", "real houses A+D"), ("sim_state_prediction", "simulated")):
        if key in results:
            r = results[key]
            rows.append([label, r["model"]["auc"], *(r[b]["auc"] for b in _BASELINES), r["model"]["brier"],
                         r["auc_gain_over_best_baseline"]])  # fmt: skip
    if rows:
        section.tables.append(("Device-state prediction on held-out days (ROC-AUC; Brier of the model)",
                               ["data", "model", "hour-of-week prior", "last state persists", "hour logistic",
                                "model Brier", "gain over best baseline"], rows))  # fmt: skip
        section.figures.append(
            (
                _state_prediction_figure(results, figures_dir / "home_state_prediction.png").name,
                "ROC-AUC of the device-state model and the three baselines on held-out days",
            )
        )
    if "_archetypes" in results:
        found = results["_archetypes"]
        plot_device_map(results["_embeddings"], found, results["_on_hours"], figures_dir / "home_device_map.png")
        section.figures.append(("home_device_map.png", "Device map: embeddings in 2-D by archetype and on-duration"))
        cols = [c for c in ("title", "devices", "common_names", "median_on_hours", "true_archetype_majority")
                if c in found.table.columns]  # fmt: skip
        section.tables.append(("Usage archetypes (k-means on device embeddings)", cols,
                               found.table[cols].values.tolist()))  # fmt: skip
        if "archetypes" in results:
            a = results["archetypes"]
            section.paragraphs.append(
                f"Archetypes against the simulator's {a['true_archetypes']} true archetypes (k={a['k']}): purity "
                f"{a['embeddings']['purity']:.2f}, NMI {a['embeddings']['nmi']:.2f} from the embeddings; k-means on the "
                f"raw usage features: purity {a['raw_usage_features']['purity']:.2f}, NMI {a['raw_usage_features']['nmi']:.2f}."
            )
    if "houseD_rooms" in results or "sim_rooms" in results:
        section.figures.append((_rooms_figure(results, figures_dir / "home_rooms.png").name,
                                "Room inference, leave-one-out with the device's name and room hidden"))  # fmt: skip
    if "home_state" in results:
        hs = results["home_state"]
        section.tables.append(("Home state (home / away / asleep) on held-out days of the training homes", ["features", "accuracy", "macro F1",
                               "away AUC", "asleep AUC"],
                               [[k, v["accuracy"], v["macro_f1"], v["away_auc"], v["asleep_auc"]]
                                for k, v in hs.items() if isinstance(v, dict) and "accuracy" in v]))  # fmt: skip
        if "held_out_homes" in hs:
            u = hs["held_out_homes"]
            section.tables.append((f"Home state on held-out days of homes the classifier never saw ({u['folds']} folds "
                                   f"of {u['homes']} homes)", ["features", "accuracy", "macro F1", "away AUC",
                                   "asleep AUC"], [[k, v["accuracy"], v["macro_f1"], v["away_auc"], v["asleep_auc"]]
                                   for k, v in u.items() if isinstance(v, dict) and "accuracy" in v]))  # fmt: skip
    if "_hunches" in results:
        h = results["hunches"]
        section.figures.append(
            (
                _pr_figure(results, figures_dir / "home_hunch_pr.png").name,
                "Automatic actions: precision and recall against forgotten devices (held-out days)",
            )
        )
        path, home_id = _timeline_figure(results, figures_dir / "home_timeline.png")
        section.figures.append(
            (path.name, f"Two held-out days of {home_id} with automatic actions and forgotten devices")
        )
        section.tables.append(("Hunch acceptance on held-out days", ["scorer", "slot AUC", "average precision",
                               "threshold", "action precision", "action recall"],
                               [[n, h[n]["slot_auc"], h[n]["slot_average_precision"],
                                 h[n]["actions_at_validation_threshold"]["threshold"],
                                 h[n]["actions_at_validation_threshold"]["precision"],
                                 h[n]["actions_at_validation_threshold"]["recall"]]
                                for n in ("rule", "scratch", "transfer")]))  # fmt: skip
    section.paragraphs.append(f"Computed {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.")
    return section
