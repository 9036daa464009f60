"""CLINC150 (Larson et al., 2019): 150 intents in 10 domains, plus out-of-scope requests.

File: ``vendor/clinc150/data_full.json``, one JSON object whose keys are
``train``, ``val``, ``test`` (15,000 / 3,000 / 4,500 in-scope requests, 100 / 20 /
30 per intent) and ``oos_train``, ``oos_val``, ``oos_test`` (100 / 100 / 1,000
out-of-scope requests). Each is a list of ``[text, intent]`` pairs; out-of-scope
requests have the intent ``"oos"``. Requests carry no slot annotation. Text is
lower-case as in the source; words are whitespace-separated.

CC BY 3.0 (clinc/oos-eval).
"""

from __future__ import annotations

import json
from pathlib import Path

from homeloop.datasets._base import LabeledUtterance, vendor_path
from homeloop.errors import InvalidInputError, UnsupportedFormatError

__all__ = ["OOS_INTENT", "SPLITS", "load_clinc150"]

SPLITS = ("train", "val", "test")
OOS_INTENT = "oos"


def load_clinc150(
    split: str = "train", *, include_oos: bool = False, root: str | Path | None = None
) -> list[LabeledUtterance]:
    """Read one split of CLINC150 (``"train"``, ``"val"`` or ``"test"``) in file order.

    With ``include_oos=True`` the split's out-of-scope requests (intent ``"oos"``)
    follow the in-scope ones.
    """
    if split not in SPLITS:
        raise InvalidInputError(f"CLINC150 split {split!r}: expected one of {list(SPLITS)}")
    path = Path(root) / "data_full.json" if root is not None else vendor_path("clinc150", "data_full.json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UnsupportedFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    keys = [split] + ([f"oos_{split}"] if include_oos else [])
    out: list[LabeledUtterance] = []
    for key in keys:
        rows = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise UnsupportedFormatError(f"{path}: expected a list under key {key!r}, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) and v.strip() for v in row)):
                raise UnsupportedFormatError(f"{path}: {key}[{i}]: expected [text, intent], got {row!r:.80}")
            text, intent = row
            if key.startswith("oos_") and intent != OOS_INTENT:
                raise UnsupportedFormatError(f"{path}: {key}[{i}]: expected intent {OOS_INTENT!r}, got {intent!r}")
            tokens = tuple(text.split())
            out.append(LabeledUtterance(text=" ".join(tokens), intent=intent, tokens=tokens, source="clinc150"))
    return out
