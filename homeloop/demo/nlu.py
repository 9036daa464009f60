"""The demo report's section on the assistant's NLU: its HWU64 test figures and accuracy by scenario."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from homeloop.datasets import load_hwu64
from homeloop.report import Section
from homeloop.report import figures as figs

__all__ = ["nlu_section"]


def nlu_section(model_path: Path, encoder: str, nlu_metrics: dict[str, Any], staging: Path) -> Section:
    """The NLU saved at ``model_path`` and its HWU64 test figures (``nlu_metrics``, as
    :func:`homeloop.nlu.evaluate` returns them); the figure by scenario goes into ``staging``."""
    per_intent = nlu_metrics.get("per_intent_accuracy", {})
    counts = Counter(u.intent for u in load_hwu64("test"))
    if per_intent:
        figs.nlu_accuracy_by_scenario(per_intent, counts, staging / "nlu.png")
    return Section(
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
