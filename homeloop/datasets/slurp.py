"""SLURP (Bastianelli et al., EMNLP 2020), devel split: assistant requests with per-recording ASR error rates.

File: ``vendor/slurp/devel.jsonl``, one JSON object per line (2,033 lines)::

    {"slurp_id": 13804, "sentence": "siri what is one american dollar in japanese yen",
     "sentence_annotation": "siri what is one [currency_name : american dollar] in [currency_name : japanese yen]",
     "intent": "qa_currency", "scenario": "qa", "action": "currency",
     "tokens": [...], "entities": [{"span": [4, 5], "type": "currency_name"}],
     "recordings": [{"file": "audio-1434542201-headset.flac", "wer": 0.0, "ent_wer": 0.0, "status": "correct"}, ...]}

Words and slots come from ``sentence_annotation`` (the bracket notation of
HWU64, same reader), lower-cased, so ``text`` is the words joined by single
spaces. The source ``sentence`` differs from the annotation's words in 5 of
2,033 requests (annotator spelling fixes such as ``rihana``/``rihanna``) and is
kept in ``meta["sentence"]``. ``meta`` also holds ``slurp_id``, ``action`` and
``recordings``: one ``{"file", "wer", "ent_wer", "status"}`` per recording
(8,690 in all; ``wer`` and ``ent_wer`` are fractions, ``ent_wer`` is None for a
request without entities). Recordings whose file name ends in ``-headset.flac``
were made with a close-talk headset, the others with a far-field microphone.

Text CC BY 4.0 (pswietojanski/slurp).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from homeloop.datasets._base import LabeledUtterance, parse_bracket_annotation, vendor_path
from homeloop.errors import InvalidInputError, UnsupportedFormatError

__all__ = ["MICROPHONES", "load_slurp", "slurp_wer_distribution"]

MICROPHONES = ("all", "headset", "far_field")
_REQUIRED = {"slurp_id": int, "sentence": str, "sentence_annotation": str, "intent": str, "scenario": str}


def _path(root: str | Path | None) -> Path:
    return Path(root) / "devel.jsonl" if root is not None else vendor_path("slurp", "devel.jsonl")


def load_slurp(*, root: str | Path | None = None) -> list[LabeledUtterance]:
    """Read the SLURP devel requests in file order."""
    path = _path(root)
    out: list[LabeledUtterance] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UnsupportedFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UnsupportedFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key, kind in _REQUIRED.items():
                if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                    raise UnsupportedFormatError(
                        f"{where}: field {key!r}: expected {kind.__name__}, got {row.get(key)!r:.60}"
                    )
            tokens, slots = parse_bracket_annotation(row["sentence_annotation"], where=where)
            tokens = tuple(t.lower() for t in tokens)
            if not tokens:
                raise UnsupportedFormatError(f"{where}: the annotation has no words")
            out.append(
                LabeledUtterance(
                    text=" ".join(tokens),
                    intent=row["intent"],
                    tokens=tokens,
                    slots=slots,
                    scenario=row["scenario"],
                    source="slurp",
                    meta={
                        "slurp_id": row["slurp_id"],
                        "action": row.get("action", ""),
                        "sentence": row["sentence"],
                        "recordings": [
                            _recording(r, f"{where}: recordings[{i}]") for i, r in enumerate(_list(row, where))
                        ],
                    },
                )
            )
    if not out:
        raise UnsupportedFormatError(f"{path}: no SLURP rows found")
    return out


def _list(row: dict[str, Any], where: str) -> list[Any]:
    recs = row.get("recordings")
    if not isinstance(recs, list):
        raise UnsupportedFormatError(f"{where}: field 'recordings': expected a list, got {recs!r:.60}")
    return recs


def _rate(value: Any, where: str, name: str, *, nullable: bool) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UnsupportedFormatError(f"{where}: {name!r}: expected a non-negative number, got {value!r}")
    return float(value)


def _recording(r: Any, where: str) -> dict[str, Any]:
    if not isinstance(r, dict) or not isinstance(r.get("file"), str) or not isinstance(r.get("status"), str):
        raise UnsupportedFormatError(f"{where}: expected {{'file', 'wer', 'ent_wer', 'status'}}, got {r!r:.80}")
    return {
        "file": r["file"],
        "wer": _rate(r.get("wer"), where, "wer", nullable=False),
        "ent_wer": _rate(r.get("ent_wer"), where, "ent_wer", nullable=True),
        "status": r["status"],
    }


def slurp_wer_distribution(*, microphone: str = "all", root: str | Path | None = None) -> np.ndarray:
    """Word error rate of every SLURP devel recording (a float64 array, file order), for calibrating ASR noise.

    ``microphone`` keeps ``"all"`` recordings, only ``"headset"`` ones or only ``"far_field"`` ones.
    """
    if microphone not in MICROPHONES:
        raise InvalidInputError(f"microphone {microphone!r}: expected one of {list(MICROPHONES)}")
    values = [
        rec["wer"]
        for utt in load_slurp(root=root)
        for rec in utt.meta["recordings"]
        if microphone == "all" or rec["file"].endswith("-headset.flac") == (microphone == "headset")
    ]
    return np.asarray(values, dtype=np.float64)
