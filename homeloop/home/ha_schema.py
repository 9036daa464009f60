"""A JSON Schema for Home Assistant automation configurations (a re-implementation, not Home Assistant's own).

Home Assistant validates automations with voluptuous schemas in its core
(``homeassistant/components/automation/config.py`` and ``__init__.py``'s
``PLATFORM_SCHEMA``, ``homeassistant/helpers/config_validation.py`` for triggers,
conditions and actions). Installing Home Assistant to run those is too heavy for
homeloop, so this module restates the parts that automations written by homeloop
use, as JSON Schema (draft 2020-12), from the documentation:

- https://www.home-assistant.io/docs/automation/yaml/ (an automation: ``id``, ``alias``,
  ``description``, ``mode``, ``triggers``/``trigger``, ``conditions``/``condition``,
  ``actions``/``action``);
- https://www.home-assistant.io/docs/automation/trigger/ (``trigger:`` or the older
  ``platform:`` key; state triggers with ``entity_id``, ``from``, ``to``, ``for``;
  numeric_state with ``above``/``below``; time with ``at``; sun; time_pattern;
  homeassistant);
- https://www.home-assistant.io/docs/scripts/conditions/ (state, numeric_state, time
  with ``after``/``before``/``weekday``, sun, template, and/or/not);
- https://www.home-assistant.io/docs/scripts/perform-actions/ (``action:`` or the older
  ``service:`` key ``<domain>.<service>`` with ``target`` and ``data``; ``delay``).

It is stricter than Home Assistant in one way (unknown keys in the parts it knows are
errors, to catch typos) and looser in another (it does not know every trigger,
condition and action platform; unknown platforms are accepted as long as they name one).
:func:`validate_automations` checks a list of automations and returns readable errors.
"""

from __future__ import annotations

from typing import Any

from homeloop.errors import MissingExtraError

__all__ = ["AUTOMATION_SCHEMA", "validate_automations"]

_ENTITY_ID = {"type": "string", "pattern": r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$"}
_ENTITY_IDS = {"anyOf": [_ENTITY_ID, {"type": "array", "items": _ENTITY_ID, "minItems": 1}]}
_TIME = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"}
_DURATION = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\d+:[0-5]?\d(:[0-5]?\d(\.\d+)?)?$"},
        {
            "type": "object",
            "properties": {k: {"type": "number", "minimum": 0}
                           for k in ("days", "hours", "minutes", "seconds", "milliseconds")},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ]
}  # fmt: skip
_STATE_VALUE = {"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": {"type": "string"}}]}
_COMMON_TRIGGER = {"id": {"type": "string"}, "enabled": {"type": "boolean"}, "variables": {"type": "object"},
                   "alias": {"type": "string"}}  # fmt: skip


def _platform(name: str, properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """A trigger platform: ``trigger: <name>`` (or the older ``platform: <name>``) with its keys."""
    props = {**_COMMON_TRIGGER, **properties}
    return {
        "if": {"anyOf": [{"required": ["trigger"], "properties": {"trigger": {"const": name}}},
                         {"required": ["platform"], "properties": {"platform": {"const": name}}}]},
        "then": {"properties": {"trigger": True, "platform": True, **props}, "required": required,
                 "additionalProperties": False, **extra},
    }  # fmt: skip


_TRIGGER = {
    "type": "object",
    "oneOf": [{"required": ["trigger"], "not": {"required": ["platform"]}},
              {"required": ["platform"], "not": {"required": ["trigger"]}}],
    "properties": {"trigger": {"type": "string", "minLength": 1}, "platform": {"type": "string", "minLength": 1}},
    "allOf": [
        _platform("state", {"entity_id": _ENTITY_IDS, "from": _STATE_VALUE, "to": _STATE_VALUE,
                            "not_from": _STATE_VALUE, "not_to": _STATE_VALUE, "attribute": {"type": "string"},
                            "for": _DURATION}, ["entity_id"]),
        _platform("numeric_state", {"entity_id": _ENTITY_IDS, "above": {"type": ["number", "string"]},
                                    "below": {"type": ["number", "string"]}, "attribute": {"type": "string"},
                                    "value_template": {"type": "string"}, "for": _DURATION},
                  ["entity_id"], anyOf=[{"required": ["above"]}, {"required": ["below"]}]),
        _platform("time", {"at": {"anyOf": [_TIME, _ENTITY_ID, {"type": "array", "items": {"anyOf": [_TIME, _ENTITY_ID]}}]},
                           "weekday": {"anyOf": [{"type": "string"}, {"type": "array"}]}}, ["at"]),
        _platform("sun", {"event": {"enum": ["sunrise", "sunset"]}, "offset": {"type": "string"}}, ["event"]),
        _platform("time_pattern", {k: {"type": ["string", "integer"]} for k in ("hours", "minutes", "seconds")}, [],
                  minProperties=2),
        _platform("homeassistant", {"event": {"enum": ["start", "shutdown"]}}, ["event"]),
    ],
}  # fmt: skip

_CONDITION: dict[str, Any] = {
    "type": "object",
    "required": ["condition"],
    "properties": {"condition": {"type": "string"}},
    "allOf": [
        {"if": {"properties": {"condition": {"const": "state"}}},
         "then": {"required": ["entity_id", "state"],
                  "properties": {"condition": True, "entity_id": _ENTITY_IDS, "state": _STATE_VALUE,
                                 "attribute": {"type": "string"}, "for": _DURATION, "match": {"enum": ["all", "any"]},
                                 "alias": {"type": "string"}, "enabled": {"type": "boolean"}},
                  "additionalProperties": False}},
        {"if": {"properties": {"condition": {"const": "numeric_state"}}},
         "then": {"required": ["entity_id"], "anyOf": [{"required": ["above"]}, {"required": ["below"]}],
                  "properties": {"condition": True, "entity_id": _ENTITY_IDS, "above": {"type": ["number", "string"]},
                                 "below": {"type": ["number", "string"]}, "attribute": {"type": "string"},
                                 "value_template": {"type": "string"}, "alias": {"type": "string"},
                                 "enabled": {"type": "boolean"}},
                  "additionalProperties": False}},
        {"if": {"properties": {"condition": {"const": "time"}}},
         "then": {"anyOf": [{"required": ["after"]}, {"required": ["before"]}, {"required": ["weekday"]}],
                  "properties": {"condition": True, "after": {"anyOf": [_TIME, _ENTITY_ID]},
                                 "before": {"anyOf": [_TIME, _ENTITY_ID]},
                                 "weekday": {"anyOf": [
                                     {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                                     {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat",
                                                                          "sun"]}}]},
                                 "alias": {"type": "string"}, "enabled": {"type": "boolean"}},
                  "additionalProperties": False}},
        {"if": {"properties": {"condition": {"enum": ["and", "or", "not"]}}},
         "then": {"required": ["conditions"],
                  "properties": {"conditions": {"type": "array", "items": {"$ref": "#/$defs/condition"}}}}},
        {"if": {"properties": {"condition": {"const": "template"}}}, "then": {"required": ["value_template"]}},
    ],
}  # fmt: skip

_ACTION = {
    "type": "object",
    "anyOf": [
        {"required": ["action"], "not": {"required": ["service"]},
         "properties": {"action": {"type": "string", "pattern": r"^[a-z0-9_]+\.[a-z0-9_]+$"}}},
        {"required": ["service"], "not": {"required": ["action"]},
         "properties": {"service": {"type": "string", "pattern": r"^[a-z0-9_]+\.[a-z0-9_]+$"}}},
        {"required": ["delay"], "properties": {"delay": _DURATION}},
        {"required": ["condition"], "$ref": "#/$defs/condition"},
    ],
    "properties": {
        "target": {"type": "object", "minProperties": 1, "additionalProperties": False,
                   "properties": {"entity_id": _ENTITY_IDS, "device_id": {"type": ["string", "array"]},
                                  "area_id": {"type": ["string", "array"]}, "floor_id": {"type": ["string", "array"]},
                                  "label_id": {"type": ["string", "array"]}}},
        "data": {"type": "object"},
        "alias": {"type": "string"},
        "enabled": {"type": "boolean"},
        "continue_on_error": {"type": "boolean"},
    },
}  # fmt: skip


def _one_or_many(ref: str) -> dict[str, Any]:
    return {"anyOf": [{"$ref": ref}, {"type": "array", "items": {"$ref": ref}}]}


#: one automation (an item of ``automations.yaml``)
AUTOMATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"trigger": _TRIGGER, "condition": _CONDITION, "action": _ACTION},
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "alias": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "mode": {"enum": ["single", "restart", "queued", "parallel"]},
        "max": {"type": "integer", "minimum": 1},
        "max_exceeded": {"enum": ["silent", "critical", "error", "warning", "info", "debug", "notset"]},
        "initial_state": {"type": "boolean"},
        "variables": {"type": "object"},
        "trace": {"type": "object"},
        "triggers": _one_or_many("#/$defs/trigger"),
        "trigger": _one_or_many("#/$defs/trigger"),
        "conditions": _one_or_many("#/$defs/condition"),
        "condition": _one_or_many("#/$defs/condition"),
        "actions": _one_or_many("#/$defs/action"),
        "action": _one_or_many("#/$defs/action"),
    },
    "additionalProperties": False,
    "allOf": [
        {"oneOf": [{"required": ["triggers"]}, {"required": ["trigger"]}]},
        {"oneOf": [{"required": ["actions"]}, {"required": ["action"]}]},
        {"not": {"required": ["conditions", "condition"]}},
    ],
}


def _deepest(err: Any) -> list[Any]:
    """The innermost errors under an ``anyOf``/``oneOf`` failure: those whose path reaches furthest."""
    if not err.context:
        return [err]
    leaves = [leaf for sub in err.context for leaf in _deepest(sub)]
    depth = max(len(leaf.absolute_path) for leaf in leaves)
    if depth <= len(err.absolute_path):
        return [err]
    return [leaf for leaf in leaves if len(leaf.absolute_path) == depth]


def validate_automations(automations: Any) -> list[str]:
    """Errors (``"<automation index>: <path>: <message>"``) of a list of automations; empty when all are valid.

    Uses ``jsonschema`` (a runtime dependency of homeloop); an install without it gets
    :class:`~homeloop.errors.MissingExtraError` saying so, never a bare ``ImportError``.
    """
    try:
        import jsonschema
    except ImportError as exc:
        raise MissingExtraError(f"validating automations needs jsonschema: pip install jsonschema ({exc})") from exc
    if not isinstance(automations, list):
        return [f"expected a list of automations, got {type(automations).__name__}"]
    validator = jsonschema.Draft202012Validator(AUTOMATION_SCHEMA)
    errors = []
    for i, automation in enumerate(automations):
        if isinstance(automation, dict):
            for new, old in (("triggers", "trigger"), ("actions", "action")):
                if new not in automation and old not in automation:
                    errors.append(f"{i}: (top): {new!r} is a required property")
                elif new in automation and old in automation:
                    errors.append(f"{i}: (top): use either {new!r} or {old!r}, not both")
            if errors and errors[-1].startswith(f"{i}:"):
                continue
        for err in sorted(validator.iter_errors(automation), key=lambda e: [str(p) for p in e.absolute_path]):
            for leaf in _deepest(err):
                path = "/".join(str(p) for p in leaf.absolute_path) or "(top)"
                message = f"{i}: {path}: {leaf.message}"
                if message not in errors:
                    errors.append(message)
    ids = [a.get("id") for a in automations if isinstance(a, dict) and a.get("id")]
    errors += [f"id {d!r} is used more than once" for d in sorted({d for d in ids if ids.count(d) > 1})]
    return errors
