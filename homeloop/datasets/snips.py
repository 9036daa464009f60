"""SNIPS 2017 custom-intent benchmark (Coucke et al., 2018): 7 intents with slots.

Files: ``vendor/snips/<Intent>/train_<Intent>_full.json`` (about 2,000 requests
per intent, 13,784 in all) and ``vendor/snips/<Intent>/validate_<Intent>.json``
(100 per intent). Each file is one JSON object ``{"<Intent>": [request, ...]}``;
a request is ``{"data": [piece, ...]}`` and a piece is ``{"text": "..."}`` or
``{"text": "...", "entity": "<slot name>"}``. The request's text is the pieces
joined.

Reading:

- Words are the whitespace-separated words *of each piece*, so a slot always
  covers whole words even where the source glues a piece to the next one
  (``"Lake" + "?"`` become the words ``Lake ?``). ``text`` is the words joined by
  single spaces; the source text as written is kept in ``meta["original_text"]``.
- Case is kept as written.
- The files are UTF-8, except that ``train_PlayMusic_full.json`` holds one emoji
  written as a CESU-8 surrogate pair (bytes ``ED A0 BC ED BD 95``, "🍕"); the
  reader decodes it to the character it stands for.

CC0 1.0 (sonos/nlu-benchmark).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeloop.datasets._base import LabeledUtterance, vendor_path
from homeloop.errors import InvalidInputError, MissingInputError, UnsupportedFormatError

__all__ = ["INTENTS", "SPLITS", "load_snips"]

INTENTS = (
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
)
SPLITS = {"train": "train_{intent}_full.json", "validate": "validate_{intent}.json"}


def load_snips(split: str = "train", *, root: str | Path | None = None) -> list[LabeledUtterance]:
    """Read one split of SNIPS (``"train"`` or ``"validate"``), intents in alphabetical order, file order within."""
    if split not in SPLITS:
        raise InvalidInputError(f"SNIPS split {split!r}: expected one of {sorted(SPLITS)}")
    base = Path(root) if root is not None else vendor_path("snips")
    out: list[LabeledUtterance] = []
    for intent in INTENTS:
        path = base / intent / SPLITS[split].format(intent=intent)
        if not path.exists():
            raise MissingInputError(f"SNIPS file {path} is missing")
        out.extend(_read_file(path, intent))
    return out


def _decode(raw: bytes) -> str:
    # ``surrogatepass`` accepts CESU-8 surrogate pairs; the round trip through UTF-16 joins them.
    text = raw.decode("utf-8-sig", errors="surrogatepass")
    return text.encode("utf-16", errors="surrogatepass").decode("utf-16")


def _read_file(path: Path, intent: str) -> list[LabeledUtterance]:
    try:
        doc = json.loads(_decode(path.read_bytes()))
    except UnicodeError as exc:
        raise UnsupportedFormatError(f"{path}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UnsupportedFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or list(doc) != [intent] or not isinstance(doc[intent], list):
        got = list(doc)[:3] if isinstance(doc, dict) else type(doc).__name__
        raise UnsupportedFormatError(f"{path}: expected an object with the single key {intent!r}, got {got}")
    return [_read_request(req, intent, f"{path}: {intent}[{i}]") for i, req in enumerate(doc[intent])]


def _read_request(req: Any, intent: str, where: str) -> LabeledUtterance:
    if not isinstance(req, dict) or not isinstance(req.get("data"), list) or not req["data"]:
        raise UnsupportedFormatError(f"{where}: expected {{'data': [pieces]}}, got {str(req)[:80]}")
    tokens: list[str] = []
    slots: list[tuple[str, int, int]] = []
    for j, piece in enumerate(req["data"]):
        if not isinstance(piece, dict) or not isinstance(piece.get("text"), str) or set(piece) - {"text", "entity"}:
            raise UnsupportedFormatError(
                f"{where}.data[{j}]: expected {{'text': str}} or {{'text': str, 'entity': str}}, got {piece!r:.80}"
            )
        words = piece["text"].split()
        entity = piece.get("entity")
        if entity is not None:
            if not isinstance(entity, str) or not entity:
                raise UnsupportedFormatError(f"{where}.data[{j}]: entity must be a non-empty string, got {entity!r}")
            if words:
                slots.append((entity, len(tokens), len(tokens) + len(words)))
        tokens.extend(words)
    if not tokens:
        raise UnsupportedFormatError(f"{where}: the request has no words")
    original = "".join(p["text"] for p in req["data"])
    return LabeledUtterance(
        text=" ".join(tokens),
        intent=intent,
        tokens=tuple(tokens),
        slots=tuple(slots),
        source="snips",
        meta={"original_text": original},
    )
