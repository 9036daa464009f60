"""``homeloop demo``: the whole loop on the embedded default world, with a report.

The steps are library functions so that scripts can run them one by one:
:func:`assistant_nlu` (train or load the assistant's NLU), :func:`simulate_into`
(simulate a world into the lake), :func:`run_demo` (both, plus the report).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from homeloop.data.lake import Lake
from homeloop.datasets import load_hwu64
from homeloop.errors import MissingInputError
from homeloop.nlu import IntentSlotModel, evaluate
from homeloop.nlu.artifacts import load_model, save_model
from homeloop.report import Section, new_report_dir, write_report
from homeloop.report import figures as figs
from homeloop.workspace import Workspace
from homeloop.world import SimulationResult, WorldConfig, simulate_to_lake

__all__ = ["DEMO_CONFIG", "assistant_nlu", "held_out_world", "run_demo", "simulate_into", "train_assistant_nlu"]

Progress = Callable[[str, int, int], None]

DEMO_CONFIG = WorldConfig(homes=40, days=14, seed=0)


def train_assistant_nlu(
    ws: Workspace,
    *,
    encoder: str = "fast",
    epochs: int | None = None,
    seed: int = 0,
    callbacks: tuple = (),
) -> tuple[IntentSlotModel, Path, dict[str, Any]]:
    """Train the assistant's NLU on HWU64 train, score it on HWU64 test, save it as the next version with
    its metrics, and register it in the operational database's model registry."""
    from homeloop.artifacts import register

    started = time.perf_counter()
    model = IntentSlotModel(encoder=encoder, epochs=epochs, seed=seed).fit(load_hwu64("train"), callbacks=callbacks)
    seconds = time.perf_counter() - started
    metrics = {
        **evaluate(model, load_hwu64("test")),
        "dataset": "hwu64",
        "split": "test",
        "training_seconds": round(seconds, 2),
    }
    path = save_model(model, ws.models, metrics=metrics, training_data={"name": "hwu64", "split": "train"})
    register(ws, path)
    return model, path, metrics


def assistant_nlu(
    ws: Workspace,
    *,
    encoder: str = "fast",
    retrain: bool = False,
    callbacks: tuple = (),
) -> tuple[IntentSlotModel, Path, dict[str, Any]]:
    """The assistant's NLU as served: the workspace's promoted model (the newest saved one while nothing is
    promoted), or a new one (:func:`train_assistant_nlu`)."""
    from homeloop.graceful.gate import serving_model_path

    if not retrain:
        try:
            path = serving_model_path(ws)
        except MissingInputError:
            pass
        else:
            metrics = json.loads((path / "metadata.json").read_text()).get("metrics", {})
            return load_model(path), path, metrics
    return train_assistant_nlu(ws, encoder=encoder, callbacks=callbacks)


def simulate_into(
    ws: Workspace, config: WorldConfig, nlu, *, dataset: str = "sim", progress: Progress | None = None
) -> SimulationResult:
    """Simulate ``config`` into the lake as ``dataset`` (replacing an older run of that name), then read it back.

    The world streams into the lake chunk by chunk (:func:`homeloop.world.simulate_to_lake`); the result
    holds the tables as Arrow, read back from the lake.
    """
    lake = Lake(ws.lake)
    figures = simulate_to_lake(config, lake, dataset, nlu=nlu, progress=progress)
    tables = {name: lake.read(dataset, name) for name in lake.tables(dataset)}
    return SimulationResult(config, tables, figures)


def _defect_figures(truth: pd.DataFrame) -> dict[str, Any]:
    req = truth[truth["kind"].isin(["request", "rephrase"])]
    goals = truth[truth["kind"].isin(["request", "rephrase"])].sort_values("attempt").groupby("goal_id").last()
    return {
        "requests": len(req),
        "defect_rate": round(float((~req["success"]).mean()), 4),
        "goal_success_rate": round(float(goals["success"].mean()), 4),
        "failure_points": {k: int(v) for k, v in truth["failure_point"].value_counts().items()},
    }


def run_demo(
    ws: Workspace,
    *,
    config: WorldConfig = DEMO_CONFIG,
    encoder: str = "fast",
    progress: Progress | None = None,
    nlu_callbacks: tuple = (),
) -> dict[str, Any]:
    """Train (or load) the NLU, simulate the neighbourhood, write the report; returns the summary figures."""
    model, model_path, nlu_metrics = assistant_nlu(ws, encoder=encoder, callbacks=nlu_callbacks)
    if "per_intent_accuracy" not in nlu_metrics:
        nlu_metrics = evaluate(model, load_hwu64("test"))
    result = simulate_into(ws, config, model, progress=progress)
    t = result.tables
    truth = t["truth_turns"].to_pandas()
    defects = _defect_figures(truth)

    staging = new_report_dir(ws.reports)
    sections: list[Section] = []
    sim = result.figures
    sections.append(
        Section(
            "The simulated neighbourhood",
            [
                f"{sim['homes']} homes, {sim['residents']} residents and {sim['devices']} devices over {sim['days']} days: "
                f"{sim['turns']} turns to the assistant and {sim['device_events']} device events, simulated in "
                f"{sim['seconds']} s ({sim['turns_per_second']} turns/s). Seed {config.seed}."
            ],
            tables=[("Run", ["figure", "value"], [[k, v] for k, v in sim.items()])],
        )
    )
    figs.defects_by_failure_point(truth, staging / "defects.png")
    sections.append(
        Section(
            "Defects by failure point",
            [
                f"{defects['requests']} requests (first tries and rephrases); {100 * defects['defect_rate']:.1f}% failed. "
                f"{100 * defects['goal_success_rate']:.1f}% of residents' goals were met in the end. The failure point is "
                "the first component that failed irrecoverably (simulator ground truth, never read by learning code)."
            ],
            tables=[
                (
                    "Turns by failure point",
                    ["failure point", "turns"],
                    [[k, v] for k, v in defects["failure_points"].items()],
                )
            ],
            figures=[("defects.png", "Share of requests by the first component that failed irrecoverably")],
        )
    )
    events, devices, presence = (t[n].to_pandas() for n in ("device_events", "devices", "truth_presence"))
    per_home = devices[devices["type"] != "speaker"].groupby("home_id").size()
    home_id = str(per_home.sort_values().index[len(per_home) * 3 // 4])
    start = dt.datetime.combine(config.start + dt.timedelta(days=min(2, config.days - 1)), dt.time(), dt.UTC)
    end = start + dt.timedelta(days=min(2, config.days))
    figs.device_timelines(events, devices, presence, home_id, start, end, staging / "timeline.png")
    sections.append(
        Section(
            "One home's devices",
            [
                f"Home {home_id}: when each device was on, coloured by who switched it; grey when everyone slept, "
                "beige when everyone was away."
            ],
            figures=[("timeline.png", f"Device timelines of home {home_id}")],
        )
    )
    loop = _self_learning(ws, config, model, staging, sections, progress)
    sections.append(_smart_home(ws, staging))
    gate = _graceful_update(ws, staging, sections)
    privacy = _privacy(staging)
    if privacy is not None:
        sections.append(privacy)
    per_intent = nlu_metrics.get("per_intent_accuracy", {})
    counts = Counter(u.intent for u in load_hwu64("test"))
    if per_intent:
        figs.nlu_accuracy_by_scenario(per_intent, counts, staging / "nlu.png")
    sections.append(
        Section(
            "The assistant's NLU",
            [
                f"Model {model_path.parent.name}/{model_path.name} ({encoder} encoder), trained on HWU64's train split and "
                "scored on its test split; published BERT-base fine-tuning reaches roughly 90-92% intent accuracy there."
            ],
            tables=[
                ("HWU64 test", ["metric", "value"], [[k, v] for k, v in nlu_metrics.items() if not isinstance(v, dict)])
            ],
            figures=[("nlu.png", "Intent accuracy by scenario")] if per_intent else [],
        )
    )
    index = write_report(staging, sections, name="demo", title="homeloop demo")
    return {
        "report": str(index),
        "nlu": {
            "path": str(model_path),
            "intent_accuracy": nlu_metrics.get("intent_accuracy"),
            "slot_f1": nlu_metrics.get("slot_f1"),
        },
        "simulation": sim,
        "defects": defects,
        **loop,
        "update_gate": gate,
    }


def _smart_home(ws: Workspace, staging: Path):
    """Device embeddings, archetypes, rooms and hunches on the simulated homes and the real houses A and D."""
    from homeloop.home import home_report_section

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


#: the privacy benchmarks' recorded figures, shipped with a clone of homeloop
BENCHMARK_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _recorded(name: str, results: Path = BENCHMARK_RESULTS) -> dict[str, Any]:
    """A benchmark's recorded figures (``benchmarks/results/<name>``), or {} when the file is not there."""
    path = results / name
    return json.loads(path.read_text()) if path.is_file() else {}


def _privacy(staging: Path, results: Path = BENCHMARK_RESULTS):
    """The privacy section from the figures the privacy benchmarks recorded (hours of attacks and training are
    too long for the demo); None when they are not there (an installed wheel has no benchmarks folder)."""
    from homeloop.privacy import privacy_report_section

    files = {
        "utility": ["dp_utility.json"],
        "attacks": ["privacy_attacks.json", "privacy_attacks_probe.json"],
        "speed": ["dp_speed_batch64.json", "dp_speed_batch256.json"],
        "data_size": ["dp_utility_data_size.json"],
    }
    found = {key: [results / n for n in names if (results / n).is_file()] for key, names in files.items()}
    found = {key: paths if key in ("attacks", "speed") else paths[0] for key, paths in found.items() if paths}
    if not found:
        return None
    section = privacy_report_section(staging, **found)
    section.paragraphs.append(
        f"Recorded by the benchmarks (<code>{', '.join(sorted(n for names in files.values() for n in names))}</code> in "
        "<code>benchmarks/results</code>), not re-measured by this demo run; "
        "<code>python benchmarks/dp_utility.py [--train-fractions 0.25 0.5 1]</code>, <code>benchmarks/privacy_attacks.py [--model minilm-probe]</code> and "
        "<code>benchmarks/dp_speed.py [--batch-size 256]</code> reproduce them (BENCHMARKS.md has the exact commands)."
    )
    return section


def _graceful_update(ws: Workspace, staging: Path, sections: list) -> dict[str, Any]:
    """A positive-congruent update of the NLU, proposed to the update gate and promoted only if it passes."""
    from homeloop.graceful.report import demo_update, graceful_report_section

    gate = demo_update(ws)
    recorded = _recorded("graceful_updates.json")
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
    sections.append(section)
    failed = [c["name"] for c in gate.get("checks", []) if not c["passed"]]
    return {"passed": gate.get("passed"), "promoted": gate.get("promoted"), "failed_checks": failed}


def held_out_world(config: WorldConfig, *, homes: int | None = None, days: int | None = None) -> WorldConfig:
    """New residents on later days of ``config``'s world: other homes, the days after it, the same recogniser."""
    return dataclasses.replace(
        config,
        homes=homes or max(1, config.homes // 2),
        days=days or config.days,
        first_home=config.first_home + 100_000,
        start=config.start + dt.timedelta(days=config.days),
    )


def _self_learning(ws: Workspace, config: WorldConfig, nlu, staging: Path, sections: list, progress) -> dict[str, Any]:
    """Defects from implicit feedback, rewrites mined from rephrase chains, replayed on held-out residents."""
    from homeloop.db import open_database
    from homeloop.selflearn import (
        defects_report_section,
        label_defects,
        rewrites_report_section,
        save_defect_model,
        train_defect_model_on_truth,
    )
    from homeloop.selflearn.replay import rewrite_loop

    lake = Lake(ws.lake)
    defect_model, held_out = train_defect_model_on_truth(lake, "sim")
    save_defect_model(defect_model, ws.models, metrics=held_out, training_data={"dataset": "sim"})
    label_defects(lake, "sim", model=defect_model)
    sections.append(defects_report_section(ws, dataset="sim", held_out=held_out, report_dir=staging))
    with open_database(ws.database_url) as db:
        table, replay, mining = rewrite_loop(lake, "sim", held_out_world(config), nlu=nlu, db=db, progress=progress)
    sections.append(rewrites_report_section(table, replay, mining_figures=mining))
    f = replay.figures
    return {
        "defect_model": {k: held_out.get(k) for k in ("model", "rules") if k in held_out},
        "rewrites": {
            "in_table": len(table),
            "table_version": mining.get("version"),
            "wins": f.get("wins"),
            "losses": f.get("losses"),
            "defect_rate_triggered": [f.get("defect_rate_triggered_without"), f.get("defect_rate_triggered_with")],
            "defect_rate_all": [f.get("defect_rate_without"), f.get("defect_rate_with")],
        },
    }
