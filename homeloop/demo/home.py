"""The demo report's smart-home section and the experiments behind it.

:func:`home_experiments` runs every held-out measurement of :mod:`homeloop.home` on a
simulated dataset (with its ground truth) and, when given, on the real houses;
:func:`home_report_section` turns the results into a :class:`homeloop.report.Section`
(state prediction, device map, archetype table, one home's timeline with hunches,
rooms, hunch precision/recall; figures from :mod:`homeloop.home.figures`).
``benchmarks/device_embeddings.py`` prints the same figures; :func:`smart_home_section`
is what the demo shows (light settings).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from homeloop.home import DeviceStateModel
from homeloop.home.archetypes import archetype_scores, find_archetypes, plot_device_map
from homeloop.home.evaluation import evaluate_state_prediction
from homeloop.home.features import DeviceHistory, UsageAggregates, load_history, split_days, usage_features
from homeloop.home.figures import (
    STATE_BASELINES,
    hunch_precision_recall_figure,
    hunch_timeline_figure,
    rooms_figure,
    state_prediction_figure,
)
from homeloop.home.hunches import evaluate_hunches
from homeloop.home.presence import evaluate_home_state, home_embeddings, home_state_labels
from homeloop.home.rooms import evaluate_rooms
from homeloop.report import Section
from homeloop.workspace import Workspace

__all__ = ["home_experiments", "home_report_section", "public_results", "smart_home_section"]


def public_results(d: Any) -> Any:
    """``d`` without the keys starting with ``_`` (the objects kept for figures), at every level."""
    if isinstance(d, dict):
        return {k: public_results(v) for k, v in d.items() if not str(k).startswith("_")}
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
        out["houses_state_prediction"] = public_results(res)
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
        out["sim_state_prediction"] = public_results(res)
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
            out["hunches"] = public_results(hres)
            out["_hunches"] = hres
            out["_sim"] = sim
            out["_forgotten"] = forgotten
            out["_presence_labels"] = labels
            timings["sim_home_state_hunches"] = time.perf_counter() - t2
            log(f"hunches: {out['hunches']}")
    out["seconds"] = timings
    return out


def home_report_section(
    workspace: Any,
    figures_dir: Path,
    *,
    dataset: str = "sim",
    houses_dataset: str | None = "houses",
    results: dict[str, Any] | None = None,
    **experiment_params: Any,
) -> Section:
    """The smart-home section of the demo report; figures are written into ``figures_dir`` (the report's folder).

    ``results`` from :func:`home_experiments` are reused when given; otherwise the
    experiments run on ``workspace``'s lake (``dataset`` simulated, ``houses_dataset`` real: the
    vendored houses A and D are ingested into it first when it is missing). ``experiment_params``
    go to :func:`home_experiments` (``text_encoder="hashing", samples_per_device=300, epochs=6`` for
    a quicker run).
    """
    from homeloop.data.lake import Lake

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
            rows.append([label, r["model"]["auc"], *(r[b]["auc"] for b in STATE_BASELINES), r["model"]["brier"],
                         r["auc_gain_over_best_baseline"]])  # fmt: skip
    if rows:
        section.tables.append(("Device-state prediction on held-out days (ROC-AUC; Brier of the model)",
                               ["data", "model", "hour-of-week prior", "last state persists", "hour logistic",
                                "model Brier", "gain over best baseline"], rows))  # fmt: skip
        section.figures.append(
            (
                state_prediction_figure(results, figures_dir / "home_state_prediction.png").name,
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
        section.figures.append((rooms_figure(results, figures_dir / "home_rooms.png").name,
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
                hunch_precision_recall_figure(results, figures_dir / "home_hunch_pr.png").name,
                "Automatic actions: precision and recall against forgotten devices (held-out days)",
            )
        )
        path, home_id = hunch_timeline_figure(results, figures_dir / "home_timeline.png")
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


def smart_home_section(ws: Workspace, staging: Path) -> Section:
    """Device embeddings, archetypes, rooms and hunches on the simulated homes and the real houses A and D."""
    # light settings (hashed name vectors, fewer samples and epochs, one model, no refit) keep the demo to minutes
    return home_report_section(
        ws,
        staging,
        dataset="sim",
        houses_dataset="houses",
        text_encoder="hashing",
        samples_per_device=300,
        epochs=6,
        refit=False,
        houses_ensemble=1,
    )
