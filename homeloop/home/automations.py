"""Suggested automations from hunches, exported as Home Assistant automation YAML.

A device that hunches keep catching on while everyone sleeps (or is away) is a
candidate for an automation: "turn off the Living Room Lamp at 23:40 if it is still
on", "lock the Front Door when everyone has left". :func:`suggest_automations` groups
the hunches that fired by device and by why (asleep or away) and keeps those seen on
at least ``min_days`` different days; :func:`automation_config` writes each as a Home
Assistant automation (``triggers``, ``conditions``, ``actions``, HA 2024.10 syntax) and
:func:`automations_yaml` as the text of an ``automations.yaml``, ready to paste.

Entity ids: a device ingested from Home Assistant keeps its entity id (the lake's
device id is ``<home>:<entity_id>``); any other device gets ``<domain>.<slug of its
name>`` with the domain its type implies (:data:`DOMAIN_FOR_TYPE`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml

__all__ = [
    "DOMAIN_FOR_TYPE",
    "AutomationSuggestion",
    "automation_config",
    "automations_yaml",
    "entity_id_for",
    "suggest_automations",
]

#: Home Assistant domain of a homeloop device type (types not listed are switches)
DOMAIN_FOR_TYPE = {
    "light": "light", "plug": "switch", "switch": "switch", "lock": "lock", "fan": "fan", "tv": "media_player",
    "speaker": "media_player", "cover": "cover", "vacuum": "vacuum", "thermostat": "climate",
}  # fmt: skip
#: (action that puts the device right, the state it is left in) per domain
_TURN_OFF = {
    "lock": ("lock.lock", "unlocked"),
    "cover": ("cover.close_cover", "open"),
    "vacuum": ("vacuum.return_to_base", "cleaning"),
    "climate": ("climate.turn_off", "heat"),
}
_ENTITY = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return re.sub(r"_+", "_", s) or "device"


def entity_id_for(device_id: str, name: str, device_type: str) -> str:
    """The Home Assistant entity id of a device (see the module docs)."""
    tail = str(device_id).rsplit(":", 1)[-1]
    if ":" in str(device_id) and _ENTITY.match(tail):
        return tail
    return f"{DOMAIN_FOR_TYPE.get(device_type, 'switch')}.{_slug(name)}"


@dataclass(frozen=True)
class AutomationSuggestion:
    device_id: str
    entity_id: str
    name: str
    reason: str  # "asleep" or "away"
    days: int  # different days the hunch fired
    hunches: int
    time: str  # "HH:MM": typical local time the hunch fired
    mean_score: float

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]

    @property
    def title(self) -> str:
        verb = "Lock" if self.domain == "lock" else "Close" if self.domain == "cover" else "Turn off"
        when = "when everyone is asleep" if self.reason == "asleep" else "when everyone has left"
        return f"{verb} {self.name} {when}"


def suggest_automations(hunches: pd.DataFrame, *, min_days: int = 2) -> list[AutomationSuggestion]:
    """Suggestions from fired hunches.

    ``hunches`` has one row per hunch with columns ``device_id``, ``name``, ``type``,
    ``local_time`` (a datetime), ``p_asleep``, ``p_away`` and ``score``.
    """
    if hunches.empty:
        return []
    df = hunches.copy()
    df["reason"] = np.where(df["p_asleep"] >= df["p_away"], "asleep", "away")
    df["day"] = pd.to_datetime(df["local_time"]).dt.date
    df["minute"] = pd.to_datetime(df["local_time"]).dt.hour * 60 + pd.to_datetime(df["local_time"]).dt.minute
    out = []
    for (device_id, reason), g in df.groupby(["device_id", "reason"], sort=True):
        first = g.sort_values("local_time").groupby("day").head(1)  # the first hunch of each day
        if first["day"].nunique() < min_days:
            continue
        # typical time: the median first-hunch minute, counted from noon so that nights do not wrap around
        minute = int(np.median((first["minute"].to_numpy() - 720) % 1440) + 720) % 1440
        name, device_type = str(g["name"].iloc[0]), str(g["type"].iloc[0])
        out.append(
            AutomationSuggestion(
                device_id=str(device_id), entity_id=entity_id_for(device_id, name, device_type), name=name,
                reason=str(reason), days=int(first["day"].nunique()), hunches=len(g),
                time=f"{minute // 60:02d}:{minute % 60:02d}", mean_score=float(g["score"].mean()),
            )
        )  # fmt: skip
    return sorted(out, key=lambda s: (-s.days, -s.mean_score, s.entity_id))


def automation_config(s: AutomationSuggestion) -> dict[str, Any]:
    """One Home Assistant automation (a dict ready for YAML) for a suggestion."""
    service, left_state = _TURN_OFF.get(s.domain, (f"{s.domain}.turn_off", "on"))
    if s.domain == "media_player":
        left_state = "on"
    condition_state = {"condition": "state", "entity_id": s.entity_id, "state": left_state}
    if s.reason == "asleep":
        triggers: list[dict[str, Any]] = [{"trigger": "time", "at": f"{s.time}:00"}]
        conditions = [condition_state, {"condition": "time", "after": f"{s.time}:00", "before": "05:00:00"}]
    else:
        triggers = [{"trigger": "numeric_state", "entity_id": "zone.home", "below": 1, "for": {"minutes": 10}}]
        conditions = [condition_state]
    return {
        "id": f"homeloop_{_slug(s.entity_id)}_{s.reason}",
        "alias": s.title,
        "description": (
            f"Suggested by homeloop: {s.name} was found on {'after bedtime' if s.reason == 'asleep' else 'with nobody home'}"
            f" on {s.days} days (typically around {s.time})."
        ),
        "mode": "single",
        "triggers": triggers,
        "conditions": conditions,
        "actions": [{"action": service, "target": {"entity_id": s.entity_id}}],
    }


def automations_yaml(suggestions: Sequence[AutomationSuggestion]) -> str:
    """The text of an ``automations.yaml`` with one automation per suggestion."""
    configs = [automation_config(s) for s in suggestions]
    return yaml.safe_dump(configs, sort_keys=False, allow_unicode=True, default_flow_style=False)
