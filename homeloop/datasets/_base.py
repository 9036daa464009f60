"""Shared record type and helpers of the dataset readers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from homeloop.errors import MissingInputError, UnsupportedFormatError

__all__ = ["LabeledUtterance", "bio_tags", "vendor_path"]


@dataclass(frozen=True)
class LabeledUtterance:
    """One annotated request: its words, intent, and slots as word spans.

    ``slots`` holds ``(name, start, end)`` word spans (``end`` exclusive) into
    ``tokens``; :func:`bio_tags` turns them into per-word BIO tags.
    """

    text: str
    intent: str
    tokens: tuple[str, ...]
    slots: tuple[tuple[str, int, int], ...] = ()
    scenario: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def slot_values(self) -> list[tuple[str, str]]:
        return [(name, " ".join(self.tokens[s:e])) for name, s, e in self.slots]

    @property
    def tags(self) -> list[str]:
        return bio_tags(len(self.tokens), self.slots)


def bio_tags(n_tokens: int, slots: tuple[tuple[str, int, int], ...] | list[tuple[str, int, int]]) -> list[str]:
    tags = ["O"] * n_tokens
    for name, start, end in slots:
        for i in range(start, end):
            tags[i] = ("B-" if i == start else "I-") + name
    return tags


def vendor_path(*parts: str) -> Path:
    """Path of a file vendored with homeloop (``homeloop/datasets/vendor/...``)."""
    path = Path(str(resources.files("homeloop.datasets"))) / "vendor"
    path = path.joinpath(*parts)
    if not path.exists():
        raise MissingInputError(f"vendored dataset file {path} is missing; reinstall homeloop")
    return path


_ANNOTATION = re.compile(r"\[\s*([^:\[\]]+?)\s*:\s*([^\[\]]*?)\s*\]")
_WORD = re.compile(r"\S+")


def parse_bracket_annotation(annotated: str, *, where: str) -> tuple[tuple[str, ...], tuple[tuple[str, int, int], ...]]:
    """Parse ``"wake me at [time : seven am]"`` into words and slot spans (HWU64, SLURP)."""
    if annotated.count("[") != annotated.count("]"):
        raise UnsupportedFormatError(f"{where}: unbalanced brackets in annotation {annotated!r}")
    tokens: list[str] = []
    slots: list[tuple[str, int, int]] = []
    pos = 0
    for m in _ANNOTATION.finditer(annotated):
        tokens.extend(_WORD.findall(annotated[pos : m.start()]))
        value_words = _WORD.findall(m.group(2))
        if value_words:
            slots.append((m.group(1).strip(), len(tokens), len(tokens) + len(value_words)))
            tokens.extend(value_words)
        pos = m.end()
    tokens.extend(_WORD.findall(annotated[pos:]))
    return tuple(tokens), tuple(slots)
