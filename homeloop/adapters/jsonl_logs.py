"""Interaction logs as JSON Lines: the adapter for any assistant that can write one JSON object per line.

Each line is one record. By default a record is a *turn* (one request to the
assistant and what it did) with exactly the fields of the lake's ``turns``
table (:mod:`homeloop.data.schema`). A line may instead say what it is with the
``"record"`` field, so that one file can carry the homes, the devices and the
device events as well::

    {"record": "home", "home_id": "h1", "timezone": "Europe/Amsterdam"}
    {"record": "device", "device_id": "d1", "home_id": "h1", "name": "Porch light", "type": "light", "room": "porch"}
    {"record": "device_event", "device_id": "d1", "home_id": "h1", "time": "2026-03-01T07:15:00+01:00",
     "state": "on", "source": "voice"}
    {"turn_id": "t1", "session_id": "s1", "user_id": "u1", "home_id": "h1", "device_id": "spk1",
     "time": "2026-03-01T07:14:58+01:00", "asr_text": "turn on the porch light", ...}

The full format is in ``docs/log-format.md``.

Behaviour:

- *Streaming*: the file is read in chunks of ``chunk_lines`` lines (50,000 by
  default); each chunk is validated and written before the next is read, so a
  file of any size fits in memory. Plain and gzip-compressed files (recognised
  by their first bytes, whatever the name) are read alike.
- *Quarantine, never abort*: a line that is not UTF-8, not JSON, not a JSON
  object, names an unknown ``record`` kind, repeats a field, or fails the
  table's schema (unknown field, wrong type, missing required field, a value
  outside its choices) goes to the lake's quarantine file with its 1-based line
  number and the reason; the other lines go in. Lines that cannot be parsed are
  quarantined under ``turns``, the default kind.
- *Idempotent*: rows are keyed (``turn_id``, ``device_id``, ...), so ingesting
  the same file twice adds nothing, and re-running an interrupted ingest adds
  what is missing.
- A device's ``type`` is matched to :data:`~homeloop.data.schema.DEVICE_TYPES`
  ignoring case; any other type is stored as ``"other"``.
- Blank lines are skipped and not counted.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from homeloop.data.lake import IngestResult, Lake
from homeloop.data.schema import DEVICE_TYPES, table, validate_record
from homeloop.errors import InvalidInputError, MissingInputError, NoDataError, SchemaError, UnsupportedFormatError

__all__ = ["DEFAULT_CHUNK_LINES", "RECORD_FIELD", "RECORD_KINDS", "ingest_logs"]

RECORD_FIELD = "record"
RECORD_KINDS: dict[str, str] = {
    "turn": "turns",
    "home": "homes",
    "device": "devices",
    "device_event": "device_events",
}
DEFAULT_CHUNK_LINES = 50_000
# tables are written in this order within a chunk: a turn's home and devices land before it
_TABLE_ORDER = ("homes", "devices", "device_events", "turns")
_DEFAULT_TABLE = RECORD_KINDS["turn"]
_GZIP_MAGIC = b"\x1f\x8b"
_SNIPPET = 120


class _DuplicateField(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateField(key)
            seen.add(key)
    return out


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _parse_line(raw: bytes, line_no: int) -> tuple[str, Any]:
    """``(table name, record)``: a dict to validate, or a :class:`SchemaError` that says why the line is unusable."""
    try:
        text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return _DEFAULT_TABLE, SchemaError(f"line is not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        record = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateField as exc:
        return _DEFAULT_TABLE, SchemaError(f"field {exc.args[0]!r} appears twice in the line: {_snippet(text)}")
    except json.JSONDecodeError as exc:
        return _DEFAULT_TABLE, SchemaError(
            f"line is not valid JSON ({exc.msg} at column {exc.colno}): {_snippet(text)}"
        )
    except RecursionError:
        return _DEFAULT_TABLE, SchemaError("line is nested too deeply to be a record")
    if not isinstance(record, dict):
        return _DEFAULT_TABLE, SchemaError(f"expected a JSON object, got {type(record).__name__}: {_snippet(text)}")
    kind = record.pop(RECORD_FIELD, "turn")
    if kind not in RECORD_KINDS:
        return _DEFAULT_TABLE, SchemaError(
            f"field {RECORD_FIELD!r}: expected one of {list(RECORD_KINDS)}, got {kind!r:.60}: {_snippet(text)}"
        )
    name = RECORD_KINDS[kind]
    if name == "devices" and isinstance(record.get("type"), str):
        device_type = record["type"].strip().lower()
        record["type"] = device_type if device_type in DEVICE_TYPES else "other"
    return name, record


class _Totals:
    """Counts for one table, summed over chunks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows_in = self.written = self.duplicates = self.quarantined = 0
        self.quarantine_path: Path | None = None

    def add(self, result: IngestResult) -> None:
        self.rows_in += result.rows_in
        self.written += result.written
        self.duplicates += result.duplicates
        self.quarantined += result.quarantined
        if self.quarantine_path is None and result.quarantine_path is not None:
            self.quarantine_path = result.quarantine_path

    def result(self) -> IngestResult:
        return IngestResult(
            self.name, self.rows_in, self.written, self.duplicates, self.quarantined, self.quarantine_path
        )


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """``(lines, raw)``: a binary stream of the (decompressed) lines and the raw file, for progress."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    magic = raw.read(2)
    raw.seek(0)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def _read_lines(path: Path, chunk_lines: int) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
    """Chunks of ``(line number, bytes)``, each with the number of raw bytes consumed so far."""
    lines, raw = _open(path)
    line_no = 0
    try:
        chunk: list[tuple[int, bytes]] = []
        try:
            for line_no, line in enumerate(lines, start=1):  # noqa: B007 - line_no is read in the except below
                if line.strip():
                    chunk.append((line_no, line))
                if len(chunk) >= chunk_lines:
                    yield chunk, raw.tell()
                    chunk = []
        except (OSError, EOFError, zlib.error) as exc:
            raise UnsupportedFormatError(
                f"{path}: the gzip stream is corrupt or truncated after line {line_no} ({exc}); "
                "the lines before it were ingested"
            ) from None
        if chunk:
            yield chunk, raw.tell()
    finally:
        lines.close()
        raw.close()


def ingest_logs(
    lake: Lake,
    path: str | os.PathLike[str],
    *,
    dataset: str = "logs",
    chunk_lines: int = DEFAULT_CHUNK_LINES,
    progress: Callable[[int], None] | None = None,
) -> dict[str, IngestResult]:
    """Ingest a JSON Lines interaction log (plain or gzip) into ``dataset`` of ``lake``.

    Returns one :class:`~homeloop.data.lake.IngestResult` per table that received
    at least one line (good or quarantined), keyed by table name (``turns``,
    ``homes``, ``devices``, ``device_events``). Quarantined lines do not raise:
    look at ``quarantined`` and ``quarantine_path`` (the first quarantine file of
    that table; more than ``chunk_lines`` bad lines of one table are split over
    several files in the same folder). ``progress`` is called with the number of
    bytes of the file (as stored, so compressed for gzip) read since the last call.

    Raises :class:`~homeloop.errors.MissingInputError` when ``path`` does not
    exist, :class:`~homeloop.errors.NoDataError` when it holds no non-blank line,
    and :class:`~homeloop.errors.UnsupportedFormatError` for a corrupt gzip stream
    (after ingesting the lines before the damage).
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(
            f"interaction log {path} does not exist; expected a JSON Lines file (.jsonl or .jsonl.gz)"
        )
    if not path.is_file():
        raise MissingInputError(
            f"interaction log {path} is not a file; expected a JSON Lines file (.jsonl or .jsonl.gz)"
        )
    if chunk_lines < 1:
        raise InvalidInputError(f"chunk_lines: expected a positive number of lines, got {chunk_lines}")
    lake.path(dataset)  # checks the dataset name before any work
    source = str(path.resolve())
    totals: dict[str, _Totals] = {}
    pending_bad: dict[str, list[tuple[int, Any]]] = {}
    bytes_done = 0

    def flush_bad(name: str) -> None:
        bad = pending_bad.pop(name, [])
        if bad:
            totals[name].add(lake.ingest(dataset, name, bad, source=source))

    for chunk, bytes_read in _read_lines(path, chunk_lines):
        good: dict[str, list[dict[str, Any]]] = {}
        for line_no, raw in chunk:
            name, record = _parse_line(raw, line_no)
            totals.setdefault(name, _Totals(name))
            if not isinstance(record, SchemaError):
                try:
                    good.setdefault(name, []).append(validate_record(table(name), record))
                    continue
                except SchemaError:
                    pass  # Lake.ingest validates it again and quarantines it with the reason
            pending_bad.setdefault(name, []).append((line_no, record))
        for name in _TABLE_ORDER:
            if good.get(name):
                totals[name].add(lake.write(dataset, name, good[name]))
            if len(pending_bad.get(name, ())) >= chunk_lines:
                flush_bad(name)
        if progress is not None:
            progress(bytes_read - bytes_done)
        bytes_done = bytes_read
    for name in list(pending_bad):
        flush_bad(name)
    if not totals:
        raise NoDataError(f"interaction log {path} holds no records (every line is blank)")
    return {name: totals[name].result() for name in _TABLE_ORDER if name in totals}
