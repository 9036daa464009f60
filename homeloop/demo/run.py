"""``homeloop demo``: the whole loop on the embedded default world, written up as one report.

:func:`run_demo` loads (or trains) the assistant's NLU (:mod:`homeloop.serving`), simulates the
neighbourhood into the lake (:func:`~homeloop.demo.world.simulate_into`), runs each capability on it
and writes the report, one section per module of :mod:`homeloop.demo`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeloop.datasets import load_hwu64
from homeloop.demo.defects import defects_section
from homeloop.demo.graceful import graceful_section
from homeloop.demo.home import smart_home_section
from homeloop.demo.nlu import nlu_section
from homeloop.demo.privacy import recorded_privacy_section
from homeloop.demo.rewrites import rewrites_section
from homeloop.demo.world import DEMO_CONFIG, defect_figures, held_out_world, simulate_into, world_sections
from homeloop.nlu import evaluate
from homeloop.report import Section, new_report_dir, write_report
from homeloop.serving import assistant_nlu
from homeloop.workspace import Workspace
from homeloop.world import WorldConfig

__all__ = ["run_demo"]

Progress = Callable[[str, int, int], None]


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
    truth = result.tables["truth_turns"].to_pandas()
    defects = defect_figures(truth)

    staging = new_report_dir(ws.reports)
    sections: list[Section] = world_sections(result, truth, defects, staging)
    section, held_out = defects_section(ws, "sim", staging)
    sections.append(section)
    section, rewrites = rewrites_section(ws, "sim", held_out_world(config), nlu=model, progress=progress)
    sections.append(section)
    sections.append(smart_home_section(ws, staging))
    section, gate = graceful_section(ws, staging)
    sections.append(section)
    sections.append(recorded_privacy_section(staging))
    sections.append(nlu_section(model_path, encoder, nlu_metrics, staging))
    index = write_report(staging, sections, name="demo", title="homeloop demo")
    return {
        "report": str(index),
        "nlu": {
            "path": str(model_path),
            "intent_accuracy": nlu_metrics.get("intent_accuracy"),
            "slot_f1": nlu_metrics.get("slot_f1"),
        },
        "simulation": result.figures,
        "defects": defects,
        "defect_model": {k: held_out.get(k) for k in ("model", "rules") if k in held_out},
        "rewrites": rewrites,
        "update_gate": gate,
    }
