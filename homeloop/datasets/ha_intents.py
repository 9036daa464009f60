"""Home Assistant Assist intent tests (OHF-Voice/intents): real smart-home requests with intent and slots.

Files: ``vendor/home_assistant_intents/tests/en/<Intent>/<case>.yaml``. Each file
is a YAML mapping::

    language: "en"
    areas: [{name: "Kitchen"}]              # optional: areas, entities, floors, timers, media the
    entities: [{name: "Garage Door", ...}]  # test adds to the shared fixtures
    tests:
      - sentences: ["open the windows in the kitchen", "open the kitchen windows"]
        slots: {area: "Kitchen", domain: "cover", device_class: "window"}   # optional
        response: "Opening the window"

``tests/en/_fixtures.yaml`` holds the shared fixture home: floors, areas (with a
``floor`` id) and entities (``id`` such as ``light.kitchen_ceiling``, ``area``
id, ``state``, ``attributes``); :func:`load_ha_fixtures` reads it.

:func:`load_ha_intent_tests` turns every sentence into one
:class:`~homeloop.datasets._base.LabeledUtterance`: the intent is the folder
name (``HassTurnOn``), the words are whitespace-separated with case kept, and
each slot value is located as a word span. Locating compares words
case-insensitively with punctuation stripped from their ends (``"50%"`` matches
``50``; ``"kitchen?"`` matches ``Kitchen``) and lets the last word take a plural
``s``/``es`` (``window`` matches ``windows``). Longer values are placed first and
spans never overlap. A value that cannot be located (``domain: "cover"`` for
"open the windows") is kept in ``meta["unlocated_slots"]``; a list value
contributes each of its items (located separately under the same slot name);
a mapping value cannot be a word span and goes to ``meta["unlocated_slots"]``
as it is. ``meta`` also keeps ``file`` (relative to ``tests/en``), ``slots``
(all slot values as written), ``response``, and the names of the test file's
own fixture ``areas``, ``entities`` and ``floors``.

CC BY 4.0 (Open Home Foundation).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

from homeloop.datasets._base import LabeledUtterance, vendor_path
from homeloop.errors import UnsupportedFormatError

__all__ = ["load_ha_fixtures", "load_ha_intent_tests", "locate_slots"]

_PUNCT = string.punctuation + "‘’“”…°"


def _tests_root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else vendor_path("home_assistant_intents", "tests", "en")


def _load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UnsupportedFormatError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_ha_fixtures(*, root: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """The shared fixture home of the tests: ``{"floors": [...], "areas": [...], "entities": [...]}``.

    Floors are ``{"id", "name"}``; areas ``{"id", "name", "floor"}`` (a floor id or
    None); entities ``{"id", "name", "domain", "area", "state", "attributes"}``
    where ``domain`` is the part of the id before the dot, ``area`` an area id or
    None, ``state`` a string or None and ``attributes`` a dict (empty when none).
    """
    path = _tests_root(root) / "_fixtures.yaml"
    doc = _load_yaml(path)
    if not isinstance(doc, dict):
        raise UnsupportedFormatError(f"{path}: expected a YAML mapping, got {type(doc).__name__}")
    out: dict[str, list[dict[str, Any]]] = {"floors": [], "areas": [], "entities": []}
    for key in out:
        items = doc.get(key) or []
        if not isinstance(items, list):
            raise UnsupportedFormatError(f"{path}: {key!r} must be a list, got {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"{path}: {key}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item.get("id"):
                raise UnsupportedFormatError(f"{where}: expected a mapping with 'name' and 'id', got {item!r:.80}")
            base = {"id": str(item["id"]), "name": item["name"]}
            if key == "areas":
                base["floor"] = item.get("floor")
            elif key == "entities":
                attributes = item.get("attributes") or {}
                if not isinstance(attributes, dict):
                    raise UnsupportedFormatError(f"{where}: 'attributes' must be a mapping, got {attributes!r:.80}")
                state = item.get("state")
                base |= {
                    "domain": base["id"].split(".", 1)[0],
                    "area": item.get("area"),
                    "state": None if state is None else str(state),
                    "attributes": attributes,
                }
            out[key].append(base)
    return out


def load_ha_intent_tests(*, root: str | Path | None = None) -> list[LabeledUtterance]:
    """Every English test sentence with its intent and located slots, by intent folder then file name."""
    base = _tests_root(root)
    out: list[LabeledUtterance] = []
    for path in sorted(base.glob("*/*.yaml")):
        intent = path.parent.name
        doc = _load_yaml(path)
        rel = path.relative_to(base).as_posix()
        if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
            raise UnsupportedFormatError(f"{path}: expected a mapping with a 'tests' list")
        fixture_names = {key: _names(doc.get(key), f"{path}: {key}") for key in ("areas", "entities", "floors")}
        for i, test in enumerate(doc["tests"]):
            where = f"{path}: tests[{i}]"
            if not isinstance(test, dict) or not isinstance(test.get("sentences"), list):
                raise UnsupportedFormatError(f"{where}: expected a mapping with a 'sentences' list")
            slots = test.get("slots") or {}
            if not isinstance(slots, dict):
                raise UnsupportedFormatError(f"{where}: 'slots' must be a mapping, got {slots!r:.80}")
            response = test.get("response")
            for j, sentence in enumerate(test["sentences"]):
                if not isinstance(sentence, str) or not sentence.split():
                    raise UnsupportedFormatError(
                        f"{where}.sentences[{j}]: expected a non-empty string, got {sentence!r}"
                    )
                tokens = tuple(sentence.split())
                spans, unlocated = locate_slots(tokens, slots)
                out.append(
                    LabeledUtterance(
                        text=" ".join(tokens),
                        intent=intent,
                        tokens=tokens,
                        slots=spans,
                        source="home_assistant_intents",
                        meta={
                            "file": rel,
                            "slots": dict(slots),
                            "unlocated_slots": unlocated,
                            "response": response,
                            **fixture_names,
                        },
                    )
                )
    if not out:
        raise UnsupportedFormatError(f"{base}: no Home Assistant intent tests found")
    return out


def _names(items: Any, where: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and "name" in i for i in items):
        raise UnsupportedFormatError(f"{where}: expected a list of mappings with 'name'")
    return [str(i["name"]) for i in items]


def _norm(word: str) -> str:
    return word.strip(_PUNCT).casefold()


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def locate_slots(
    tokens: tuple[str, ...] | list[str], slots: dict[str, Any]
) -> tuple[tuple[tuple[str, int, int], ...], dict[str, Any]]:
    """Place slot values as non-overlapping word spans; return the spans (in word order) and what was not placed."""
    words = [_norm(t) for t in tokens]
    wanted: list[tuple[str, Any, list[str]]] = []
    missing: dict[str, list[Any]] = {}
    for name, value in slots.items():
        for item in value if isinstance(value, list) else [value]:
            value_words = [] if isinstance(item, (dict, list)) or item is None else _value_words(item)
            if value_words:
                wanted.append((name, item, value_words))
            else:
                missing.setdefault(name, []).append(item)
    taken = [False] * len(words)
    spans: list[tuple[str, int, int]] = []
    for name, item, value_words in sorted(wanted, key=lambda w: -len(w[2])):  # stable: file order among equals
        span = _find(words, value_words, taken)
        if span is None:
            missing.setdefault(name, []).append(item)
            continue
        start, end = span
        taken[start:end] = [True] * (end - start)
        spans.append((name, start, end))
    unlocated = {name: vals if isinstance(slots[name], list) else vals[0] for name, vals in missing.items()}
    return tuple(sorted(spans, key=lambda s: s[1])), unlocated


def _value_words(value: Any) -> list[str]:
    return [w for w in (_norm(v) for v in _scalar_text(value).split()) if w]


def _find(words: list[str], value_words: list[str], taken: list[bool]) -> tuple[int, int] | None:
    n = len(value_words)
    last = value_words[-1]
    plurals = {last, last + "s", last + "es"}
    for start in range(len(words) - n + 1):
        end = start + n
        if any(taken[start:end]):
            continue
        if words[start : end - 1] == value_words[:-1] and words[end - 1] in plurals:
            return start, end
    return None
