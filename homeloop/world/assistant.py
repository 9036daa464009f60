"""The simulated assistant's pipeline after the recogniser: NLU, entity resolution, result.

:func:`respond` runs the pipeline on one request; any stage can be replaced by
its oracle (the true output), which is how the simulator finds the *failure
point*: the first component that failed irrecoverably. With the real outputs of
every stage up to the failing one replaced by the truth, the request succeeds;
with one stage fewer replaced, it still fails. An error that a later stage
recovered from (a misheard word the NLU read correctly anyway) is not a failure.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Protocol

from homeloop.world.homes import SimDevice, SimHome

__all__ = ["NLUPredictor", "Outcome", "Request", "respond", "failure_point"]

# "light up the lamp" is HWU64's brighten intent; on a light that is off, brightening switches it on
ON_INTENTS = frozenset({"iot_hue_lighton", "iot_hue_lightup", "iot_wemo_on", "iot_coffee", "iot_cleaning"})
OFF_INTENTS = frozenset({"iot_hue_lightoff", "iot_wemo_off"})
MEDIA_INTENTS = frozenset({"play_music", "play_radio", "play_podcasts", "play_audiobook"})
# words that stand for a device type when no name matches ("make me a coffee")
TYPE_WORDS = {
    "coffee": "coffee_maker",
    "espresso": "coffee_maker",
    "vacuum": "vacuum",
    "clean": "vacuum",
    "cleaning": "vacuum",
    "hoover": "vacuum",
    "tv": "tv",
    "television": "tv",
    "fan": "fan",
}
INTENT_TYPES = {"iot_coffee": "coffee_maker", "iot_cleaning": "vacuum"}
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "our",
        "please",
        "turn",
        "switch",
        "on",
        "off",
        "activate",
        "deactivate",
        "up",
        "down",
        "make",
        "go",
        "toggle",
        "start",
        "new",
        "could",
        "can",
        "you",
        "would",
        "will",
        "to",
        "in",
        "of",
        "and",
        "olly",
        "now",
        "set",
        "get",
        "put",
        "for",
        "me",
        "it",
        "is",
        "be",
    ]
)
_PLURAL = re.compile(r"(?<=[a-z])s$")
# words that many device names share weigh less when matching ("light" alone names no device)
_GENERIC = frozenset({"light", "lamp", "plug", "switch", "1", "2", "3", "4", "5", "6", "7", "8"})


def _weight(words: frozenset[str]) -> float:
    return sum(0.4 if w in _GENERIC else 1.0 for w in words)


class NLUPredictor(Protocol):
    def parse(self, texts: list[str]) -> list: ...


def _norm(word: str) -> str:
    return _PLURAL.sub("", word) if len(word) > 3 else word


@functools.lru_cache(maxsize=1 << 16)
def _words(text: str) -> frozenset[str]:
    return frozenset(_norm(w) for w in text.lower().split())


@dataclass(frozen=True)
class Request:
    """What one attempt was about, in truth."""

    kind: str  # "device", "info", "false_wake", "reaction"
    true_intent: str | None
    target: SimDevice | None = None
    action: str | None = None  # "on"/"off"
    wants_video: bool = False  # a media request on a screen device that means the video
    about_oven: bool = False  # "what's the temperature" while the oven is on: the oven's, not the weather
    ambiguous_item: bool = False  # several items share the requested name; the default pick is wrong


@dataclass(frozen=True)
class Outcome:
    intent: str | None
    confidence: float | None
    slots: tuple[tuple[str, str], ...]
    resolved: tuple[tuple[str, str], ...]  # (mention, device id)
    response: str
    response_type: str
    success: bool
    acted_on: SimDevice | None = None  # the device the assistant switched
    acted_state: str | None = None


def _state_word(device: SimDevice, action: str) -> str:
    if device.type == "lock":
        return "unlocked" if action == "on" else "locked"
    return action


_VOCABULARIES: dict[int, tuple[SimHome, frozenset[str]]] = {}


def _vocabulary(home: SimHome) -> frozenset[str]:
    """Words that name a device or a room of ``home`` (cached by identity: hashing a home is costly)."""
    cached = _VOCABULARIES.get(id(home))
    if cached is None or cached[0] is not home:
        if len(_VOCABULARIES) > 50_000:
            _VOCABULARIES.clear()
        cached = _VOCABULARIES[id(home)] = (
            home,
            frozenset().union(*(_words(d.name) | _words(d.room) for d in home.devices)),
        )
    return cached[1]


def resolve_device(home: SimHome, mention: str, intent: str) -> SimDevice | None:
    """Entity resolution: the home's device whose name best matches the mention.

    Names are compared as word sets (plural ``s`` dropped), with words that name no
    device or room of the home ignored; the room adds a small bonus. A tie goes to
    the first device in the home's list, which is how a wrong one of two similar
    names gets picked. When no name matches, a type word ("coffee") or the intent
    (``iot_coffee``) picks the home's only device of that type.
    """
    mwords = _words(mention)
    m = mwords & _vocabulary(home)
    best, best_score = None, 0.0
    for d in home.devices:
        n = _words(d.name)
        overlap = _weight(m & n)
        if not overlap:
            continue
        room = _words(d.room)
        score = overlap / _weight(n | (m - room)) + 0.25 * len(m & room) / len(room)
        if score > best_score + 1e-9:
            best, best_score = d, score
    if best is not None and best_score >= 0.5:
        return best
    wanted = INTENT_TYPES.get(intent) or next((TYPE_WORDS[w] for w in mwords if w in TYPE_WORDS), None)
    if wanted:
        of_type = [d for d in home.devices if d.type == wanted]
        if len(of_type) == 1:
            return of_type[0]
    lights = [d for d in home.devices if d.type == "light"]
    if intent.startswith("iot_hue") and len(lights) == 1 and not m:
        return lights[0]
    return None


def respond(
    home: SimHome,
    request: Request,
    *,
    intent: str | None,
    confidence: float | None,
    slots: tuple[tuple[str, str], ...],
    text: str,
    reject_below: float,
    er_oracle: bool = False,
    result_oracle: bool = False,
    uses_screen_context: bool = False,
    uses_device_context: bool = False,
) -> Outcome:
    """Run NLU's interpretation through entity resolution and the result stage."""
    if request.kind == "false_wake":
        return Outcome(intent, confidence, slots, (), "Sorry, I'm not sure about that.", "error", False)
    if intent is None or (confidence is not None and confidence < reject_below):
        return Outcome(intent, confidence, slots, (), "Sorry, I didn't understand that.", "error", False)
    if request.kind == "reaction":
        return Outcome(intent, confidence, slots, (), "OK.", "none", intent == request.true_intent)
    if intent in ON_INTENTS or intent in OFF_INTENTS:
        action = "on" if intent in ON_INTENTS else "off"
        # the NLU's slots name the device; when they resolve to nothing, the whole request is tried
        mention = " ".join(v for _, v in slots)
        spoken = " ".join(w for w in text.split() if w not in _FUNCTION_WORDS)
        if er_oracle and request.target is not None:
            device = request.target
        else:
            device = resolve_device(home, mention, intent) if mention else None
            if device is None:
                device = resolve_device(home, spoken, intent)
            mention = mention or spoken
        if device is None:
            return Outcome(
                intent, confidence, slots, (), f"Sorry, I couldn't find a device called {mention}.", "error", False
            )
        state = _state_word(device, action)
        success = request.kind == "device" and device is request.target and action == request.action
        return Outcome(
            intent,
            confidence,
            slots,
            ((mention, device.device_id),),
            f"OK, {device.name} is {state}.",
            "action",
            success,
            device,
            state,
        )
    # everything else is answered
    correct_intent = request.kind == "info" and intent == request.true_intent
    result_ok = True
    if correct_intent and not result_oracle:
        if intent in MEDIA_INTENTS and request.wants_video and not uses_screen_context:
            result_ok = False  # played the song where the video was meant
        elif request.about_oven and not uses_device_context:
            result_ok = False  # told the weather where the oven's temperature was meant
        elif request.ambiguous_item:
            result_ok = False  # the wrong one of several items with the same name
    return Outcome(
        intent, confidence, slots, (), f"Here is what I found for {intent}.", "answer", correct_intent and result_ok
    )


def failure_point(success_with_oracles: list[bool], *, false_wake: bool) -> str:
    """The first component that failed irrecoverably.

    ``success_with_oracles[k]`` is whether the request succeeds when the first
    ``k`` stages of (asr, nlu, entity_resolution, result) use their true outputs.
    """
    if false_wake:
        return "wake_word"
    if success_with_oracles[0]:
        return "none"
    stages = ("asr", "nlu", "entity_resolution", "result")
    for k, ok in enumerate(success_with_oracles[1:]):
        if ok:
            return stages[k]
    return "result"
