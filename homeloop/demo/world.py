"""The demo's world: its configuration, simulating it into the lake, the held-out world, and the report's
sections on the simulated neighbourhood (the run, defects by failure point, one home's devices)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from homeloop.data.lake import Lake
from homeloop.report import Section
from homeloop.report import figures as figs
from homeloop.workspace import Workspace
from homeloop.world import SimulationResult, WorldConfig, simulate_to_lake

__all__ = ["DEMO_CONFIG", "defect_figures", "held_out_world", "simulate_into", "world_sections"]

Progress = Callable[[str, int, int], None]

DEMO_CONFIG = WorldConfig(homes=40, days=14, seed=0)


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


def held_out_world(config: WorldConfig, *, homes: int | None = None, days: int | None = None) -> WorldConfig:
    """New residents on later days of ``config``'s world: other homes, the days after it, the same recogniser."""
    return dataclasses.replace(
        config,
        homes=homes or max(1, config.homes // 2),
        days=days or config.days,
        first_home=config.first_home + 100_000,
        start=config.start + dt.timedelta(days=config.days),
    )


def defect_figures(truth: pd.DataFrame) -> dict[str, Any]:
    """Requests, their defect rate, the share of goals met and turns by failure point, from ``truth_turns``."""
    req = truth[truth["kind"].isin(["request", "rephrase"])]
    goals = truth[truth["kind"].isin(["request", "rephrase"])].sort_values("attempt").groupby("goal_id").last()
    return {
        "requests": len(req),
        "defect_rate": round(float((~req["success"]).mean()), 4),
        "goal_success_rate": round(float(goals["success"].mean()), 4),
        "failure_points": {k: int(v) for k, v in truth["failure_point"].value_counts().items()},
    }


def world_sections(
    result: SimulationResult, truth: pd.DataFrame, defects: dict[str, Any], staging: Path
) -> list[Section]:
    """The simulated neighbourhood, its defects by failure point and one home's devices (figures into
    ``staging``); ``defects`` as :func:`defect_figures` returns them."""
    config, t, sim = result.config, result.tables, result.figures
    sections: list[Section] = []
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
    return sections
