"""HWU64 (Liu et al., 2019): 64 intents in 21 scenarios, fold 1 train/test split.

Files: ``vendor/hwu64/{trainset,testset}/<scenario>_<intent>.csv``, ``;``-separated
with columns ``answerid;scenario;intent;answer_annotation;answer_from_anno;answer_from_user``.
The intent label is ``<scenario>_<intent>`` (e.g. ``iot_hue_lightoff``). CC BY 4.0.
"""

from __future__ import annotations

import csv
from pathlib import Path

from homeloop.datasets._base import LabeledUtterance, parse_bracket_annotation, vendor_path
from homeloop.errors import UnsupportedFormatError

__all__ = ["SPLITS", "load_hwu64"]

SPLITS = {"train": "trainset", "test": "testset"}
_COLUMNS = ["answerid", "scenario", "intent", "answer_annotation", "answer_from_anno", "answer_from_user"]


def load_hwu64(split: str = "train", *, root: str | Path | None = None) -> list[LabeledUtterance]:
    """Read one split of HWU64 (``"train"`` or ``"test"``) in file order."""
    if split not in SPLITS:
        raise ValueError(f"HWU64 split {split!r}: expected one of {sorted(SPLITS)}")
    folder = Path(root) / SPLITS[split] if root is not None else vendor_path("hwu64", SPLITS[split])
    out: list[LabeledUtterance] = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=";")
            if reader.fieldnames != _COLUMNS:
                raise UnsupportedFormatError(f"{path}: expected columns {_COLUMNS}, found {reader.fieldnames}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                annotated = (row["answer_annotation"] or "").strip()
                if not annotated:
                    continue
                tokens, slots = parse_bracket_annotation(annotated, where=where)
                tokens = tuple(t.lower() for t in tokens)
                out.append(
                    LabeledUtterance(
                        text=" ".join(tokens),
                        intent=f"{row['scenario']}_{row['intent']}",
                        tokens=tokens,
                        slots=slots,
                        scenario=row["scenario"],
                        source="hwu64",
                    )
                )
    if not out:
        raise UnsupportedFormatError(f"{folder}: no HWU64 rows found")
    return out
