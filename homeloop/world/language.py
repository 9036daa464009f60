"""What residents say: real utterances from HWU64, SNIPS and Home Assistant's test sentences.

Device control is phrased with Home Assistant's test sentences (``turn off the
bedroom lamp``) and HWU64's iot requests, with the home's own device name put in
place of the original one. Other requests are HWU64 *test-split* utterances (the
assistant's NLU is trained on the train split, so residents say things it has
not seen) and SNIPS validation utterances mapped to HWU64 intents. TV speech
that wakes the assistant by mistake is CLINC150's out-of-scope requests.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from homeloop.datasets import load_clinc150, load_ha_intent_tests, load_hwu64, load_snips

__all__ = ["DeviceTemplate", "Phrasebook", "normalize_text"]

_PUNCT = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation but apostrophes, collapse spaces: how the recogniser writes."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@dataclass(frozen=True)
class DeviceTemplate:
    """A device-control phrasing with ``{name}`` (and maybe ``{room}``) holes."""

    text: str
    action: str  # "on" or "off"
    source: str
    explicit: bool  # says "turn on/off" or "switch on/off" outright

    @property
    def light_only(self) -> bool:
        """Says "light(s)" or "light up" outside the name: only fits lights."""
        return bool(re.search(r"\blights?\b", self.text.replace("{name}", "")))

    def render(self, name: str, room: str) -> str:
        text = self.text.replace("{room}", room.lower()).replace("{name}", name.lower())
        # "porch light lights" -> "porch light": the name already ends in a light word
        text = re.sub(r"\b(light|lights|lamp|lamps)\s+(light|lights)\b", r"\1", text)
        return normalize_text(text)


_ON_OFF = {"HassTurnOn": "on", "HassTurnOff": "off"}
_SNIPS_TO_HWU = {"PlayMusic": "play_music", "GetWeather": "weather_query"}
_EXCLUDED_INFO_SCENARIOS = {"iot", "general"}
_DEVICE_SLOTS = {"device_type"}


def _ha_templates() -> list[DeviceTemplate]:
    out = []
    for u in load_ha_intent_tests():
        action = _ON_OFF.get(u.intent)
        if action is None or not u.meta["file"].endswith(("name_only.yaml", "name_area.yaml")):
            continue
        words = [w.lower() for w in u.tokens]
        if not ({"on", "off", "activate", "deactivate"} & set(words) or words[:2] == ["light", "up"]):
            continue  # open/close/lock: not the switching our devices do
        spans = {name: (s, e) for name, s, e in u.slots}
        if "name" not in spans:
            continue
        repl = [("{name}", *spans["name"])]
        if "area" in spans:
            repl.append(("{room}", *spans["area"]))
        for hole, s, e in sorted(repl, key=lambda r: -r[1]):
            words[s:e] = [hole]
        text = " ".join(words)
        out.append(DeviceTemplate(text, action, "home_assistant_intents", bool(re.search(r"\b(turn|switch)\b", text))))
    return out


def _hwu_templates() -> list[DeviceTemplate]:
    actions = {"iot_hue_lighton": "on", "iot_hue_lightoff": "off", "iot_wemo_on": "on", "iot_wemo_off": "off"}
    out = []
    for u in load_hwu64("test"):
        action = actions.get(u.intent)
        if action is None:
            continue
        device = [(s, e) for name, s, e in u.slots if name in _DEVICE_SLOTS]
        if len(device) != 1 or any(name == "house_place" for name, _, _ in u.slots):
            continue
        s, e = device[0]
        words = list(u.tokens)
        if len(words) - e > 2:
            continue  # "turn on the {name} to connect my charger to it": too tied to the original device
        words[s:e] = ["{name}"]
        text = " ".join(words)
        out.append(DeviceTemplate(text, action, "hwu64", bool(re.search(r"\b(turn|switch)\b", text))))
    return out


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str
    slots: tuple[tuple[str, str], ...]


class Phrasebook:
    """Everything residents can say, loaded once."""

    def __init__(self) -> None:
        templates = sorted(set(_ha_templates() + _hwu_templates()), key=lambda t: (t.action, t.source, t.text))
        self.device_templates = {a: [t for t in templates if t.action == a] for a in ("on", "off")}
        self.named_templates = {a: [t for t in ts if "{room}" not in t.text] for a, ts in self.device_templates.items()}
        hwu_test = load_hwu64("test")
        info: dict[str, list[Utterance]] = {}
        for u in hwu_test:
            if u.scenario in _EXCLUDED_INFO_SCENARIOS:
                continue
            info.setdefault(u.intent, []).append(Utterance(normalize_text(u.text), u.intent, tuple(u.slot_values)))
        for u in load_snips("validate"):
            intent = _SNIPS_TO_HWU.get(u.intent)
            if intent:
                info.setdefault(intent, []).append(
                    Utterance(normalize_text(u.text), intent, tuple((n, normalize_text(v)) for n, v in u.slot_values))
                )
        self.info = {k: v for k, v in sorted(info.items()) if len(v) >= 2}
        self.info_intents = sorted(self.info)
        # how often people ask for each intent: HWU64's own frequencies (SNIPS only adds phrasings)
        hwu_counts = Counter(u.intent for u in hwu_test)
        self.info_weights = [hwu_counts[i] for i in self.info_intents]
        # coffee / cleaning requests that do not name the device ("make me a coffee")
        self.unnamed = {
            intent: [normalize_text(u.text) for u in hwu_test if u.intent == intent and not u.slots]
            for intent in ("iot_coffee", "iot_cleaning")
        }
        self.reactions = [
            Utterance(normalize_text(u.text), u.intent, ())
            for u in hwu_test
            if u.intent in ("general_negate", "general_commandstop") and len(u.tokens) <= 6
        ]
        # "what's the temperature" with nothing saying where: with the oven on, residents mean the oven
        self.temperature_questions = sorted(
            {
                normalize_text(u.text)
                for split in ("train", "test")
                for u in load_hwu64(split)
                if u.intent == "weather_query"
                and "temperature" in u.tokens
                and not {"outside", "in", "tomorrow", "will"} & set(u.tokens)
            }
        )
        self.tv_speech = [normalize_text(u.text) for u in load_clinc150("test", include_oos=True) if u.intent == "oos"]


@cache
def phrasebook() -> Phrasebook:
    return Phrasebook()
