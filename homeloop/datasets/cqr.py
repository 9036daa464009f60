"""Alexa Contextual Query Rewrite dataset (Rastogi et al., NAACL 2019), dev split.

File: ``vendor/cqr/cqr_kvret_dev_public.json``: one JSON list of 271 dialogues
from the Stanford in-car dialogue corpus (KVRET), each::

    {"dialogue": [turn, ...],
     "scenario": {"kb": {"kb_title": "calendar", ...}, "task": {"intent": "schedule"}, "uuid": "..."}}

A turn is ``{"turn": "driver"|"assistant", "data": {...}}``; ``data`` holds
``utterance`` and ``end_dialogue``, and on assistant turns the ``slots``
(name -> value) and ``requested`` (name -> bool) of KVRET. 470 assistant turns
also carry ``reformulation``:

``base_utt_idx``
    index (into the dialogue's turns) of the earlier driver utterance that is rewritten
``reformulated_utt``
    the gold rewrite that makes it understandable without context, or null
    where the annotators wrote none (264 turns)
``mturk_reformulations``
    crowd-sourced rewrites (absent on some turns: empty here)
``gold_slots``
    the slot values the rewrite must carry (absent on some turns: empty here)
``flag``
    the kind of reference being resolved (``zero``, ``pronominal``, ``locative``, ...; may be absent)
``slots``
    the dialogue state at that point

MIT-0 (alexa/alexa-dataset-contextual-query-rewrite).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeloop.datasets._base import vendor_path
from homeloop.errors import UnsupportedFormatError

__all__ = ["CQRDialogue", "CQRReformulation", "CQRTurn", "load_cqr"]


@dataclass(frozen=True)
class CQRReformulation:
    base_utt_idx: int
    reformulated_utt: str | None
    mturk_reformulations: tuple[str, ...] = ()
    gold_slots: tuple[str, ...] = ()
    flag: str | None = None
    slots: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class CQRTurn:
    speaker: str  # "driver" or "assistant"
    utterance: str
    end_dialogue: bool
    slots: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    requested: dict[str, bool] = field(default_factory=dict, compare=False, hash=False)
    reformulation: CQRReformulation | None = None


@dataclass(frozen=True)
class CQRDialogue:
    uuid: str
    intent: str  # navigate, weather, schedule
    kb_title: str
    turns: tuple[CQRTurn, ...]

    def rewrites(self) -> list[tuple[tuple[str, ...], str, str]]:
        """``(context, base utterance, gold rewrite)`` for each reformulation that has a gold rewrite.

        ``context`` is the dialogue's utterances up to and including the turn that
        carries the reformulation (the rewrite draws on all of them).
        """
        out = []
        for i, turn in enumerate(self.turns):
            ref = turn.reformulation
            if ref is not None and ref.reformulated_utt is not None:
                context = tuple(t.utterance for t in self.turns[: i + 1])
                out.append((context, self.turns[ref.base_utt_idx].utterance, ref.reformulated_utt))
        return out


def load_cqr(*, root: str | Path | None = None) -> list[CQRDialogue]:
    """Read the CQR dev dialogues in file order."""
    path = (
        Path(root) / "cqr_kvret_dev_public.json"
        if root is not None
        else vendor_path("cqr", "cqr_kvret_dev_public.json")
    )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UnsupportedFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, list) or not doc:
        raise UnsupportedFormatError(f"{path}: expected a non-empty JSON list of dialogues, got {type(doc).__name__}")
    return [_dialogue(d, f"{path}: [{i}]") for i, d in enumerate(doc)]


def _expect(cond: bool, where: str, what: str, got: Any) -> None:
    if not cond:
        raise UnsupportedFormatError(f"{where}: expected {what}, got {got!r:.80}")


def _str_dict(value: Any, where: str) -> dict[str, Any]:
    value = value if value is not None else {}
    _expect(isinstance(value, dict), where, "a mapping", value)
    return dict(value)


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    value = value if value is not None else []
    _expect(isinstance(value, list) and all(isinstance(v, str) for v in value), where, "a list of strings", value)
    return tuple(value)


def _dialogue(d: Any, where: str) -> CQRDialogue:
    _expect(
        isinstance(d, dict) and isinstance(d.get("dialogue"), list), where, "{'dialogue': [...], 'scenario': {...}}", d
    )
    scenario = d.get("scenario")
    _expect(
        isinstance(scenario, dict) and isinstance(scenario.get("uuid"), str), f"{where}.scenario", "a uuid", scenario
    )
    turns = tuple(_turn(t, f"{where}.dialogue[{j}]") for j, t in enumerate(d["dialogue"]))
    for j, t in enumerate(turns):
        if t.reformulation is not None:
            b = t.reformulation.base_utt_idx
            _expect(0 <= b < j, f"{where}.dialogue[{j}].reformulation.base_utt_idx", f"an index below {j}", b)
    return CQRDialogue(
        uuid=scenario["uuid"],
        intent=str((scenario.get("task") or {}).get("intent", "")),
        kb_title=str((scenario.get("kb") or {}).get("kb_title", "")),
        turns=turns,
    )


def _turn(t: Any, where: str) -> CQRTurn:
    _expect(isinstance(t, dict) and t.get("turn") in ("driver", "assistant"), where, "turn 'driver' or 'assistant'", t)
    data = t.get("data")
    _expect(isinstance(data, dict) and isinstance(data.get("utterance"), str), f"{where}.data", "an utterance", data)
    ref = t.get("reformulation")
    reformulation = None
    if ref is not None:
        rw = f"{where}.reformulation"
        _expect(isinstance(ref, dict), rw, "a mapping", ref)
        base = ref.get("base_utt_idx")
        _expect(isinstance(base, int) and not isinstance(base, bool), f"{rw}.base_utt_idx", "an integer", base)
        utt = ref.get("reformulated_utt")
        _expect(utt is None or isinstance(utt, str), f"{rw}.reformulated_utt", "a string or null", utt)
        flag = ref.get("flag")
        _expect(flag is None or isinstance(flag, str), f"{rw}.flag", "a string or null", flag)
        reformulation = CQRReformulation(
            base_utt_idx=base,
            reformulated_utt=utt,
            mturk_reformulations=_str_tuple(ref.get("mturk_reformulations"), f"{rw}.mturk_reformulations"),
            gold_slots=_str_tuple(ref.get("gold_slots"), f"{rw}.gold_slots"),
            flag=flag,
            slots=_str_dict(ref.get("slots"), f"{rw}.slots"),
        )
    return CQRTurn(
        speaker=t["turn"],
        utterance=data["utterance"],
        end_dialogue=bool(data.get("end_dialogue", False)),
        slots=_str_dict(data.get("slots"), f"{where}.data.slots"),
        requested=_str_dict(data.get("requested"), f"{where}.data.requested"),
        reformulation=reformulation,
    )
