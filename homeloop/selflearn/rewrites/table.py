"""The rewrite table: :class:`Rewrite`, :class:`RewriteTable` (the lookup by normalised text that the
simulator calls as its rewriter) and its Parquet and JSON files; :func:`normalise_utterance`, the state
an utterance maps to."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from homeloop.errors import InvalidInputError

__all__ = ["Rewrite", "RewriteTable", "normalise_utterance"]

_PUNCT = '[.,!?;:"()\\[\\]{}]+'
_PUNCT_RE = re.compile(_PUNCT)
_SPACE_RE = re.compile(r"\s+")


def normalise_utterance(text: str | None) -> str:
    """The state an utterance maps to: lower case, punctuation dropped, single spaces.

    The same rule runs inside DuckDB for the mining job (``_normalise_sql``), so a table's sources match
    what the rewriter looks up at run time.
    """
    if not text:
        return ""
    return _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text.lower())).strip()


def _normalise_sql(col: str) -> str:
    return f"trim(regexp_replace(regexp_replace(lower({col}), '{_PUNCT}', ' ', 'g'), '\\s+', ' ', 'g'))"


@dataclass(frozen=True)
class Rewrite:
    """One rewrite: ``source`` as heard is sent to NLU as ``target``."""

    source: str
    target: str
    support: int
    source_success_prob: float
    target_success_prob: float


_TABLE_SCHEMA = pa.schema(
    [
        ("source_text", pa.string()),
        ("target_text", pa.string()),
        ("support", pa.int64()),
        ("source_success_prob", pa.float64()),
        ("target_success_prob", pa.float64()),
    ]
)


class RewriteTable:
    """Learned rewrites, looked up by normalised source text; callable as the simulator's rewriter.

    ``table(texts)`` returns, for each recognised text, its rewrite target or None.
    """

    def __init__(
        self, rewrites: Iterable[Rewrite] = (), *, version: int | None = None, info: Mapping[str, Any] | None = None
    ) -> None:
        self.rewrites: list[Rewrite] = sorted(rewrites, key=lambda r: (-r.support, r.source))
        self._by_source = {r.source: r for r in self.rewrites}
        if len(self._by_source) != len(self.rewrites):
            raise InvalidInputError("rewrites: expected one rewrite per source text, got a source twice")
        self.version = version
        self.info: dict[str, Any] = dict(info or {})

    def __len__(self) -> int:
        return len(self.rewrites)

    def __iter__(self):
        return iter(self.rewrites)

    def __contains__(self, text: str) -> bool:
        return normalise_utterance(text) in self._by_source

    def __repr__(self) -> str:
        return f"RewriteTable({len(self)} rewrites, version={self.version})"

    def get(self, text: str) -> str | None:
        """The target for ``text`` as heard, or None."""
        hit = self._by_source.get(normalise_utterance(text))
        return hit.target if hit is not None else None

    def __call__(self, texts: Sequence[str]) -> list[str | None]:
        return [self.get(t) for t in texts]

    # ------------------------------------------------------------------ export

    def to_arrow(self) -> pa.Table:
        return pa.table(
            {
                "source_text": [r.source for r in self.rewrites],
                "target_text": [r.target for r in self.rewrites],
                "support": [r.support for r in self.rewrites],
                "source_success_prob": [r.source_success_prob for r in self.rewrites],
                "target_success_prob": [r.target_success_prob for r in self.rewrites],
            },
            schema=_TABLE_SCHEMA,
        )

    @classmethod
    def from_arrow(cls, data: pa.Table, **kwargs: Any) -> RewriteTable:
        missing = [n for n in _TABLE_SCHEMA.names if n not in data.column_names]
        if missing:
            raise InvalidInputError(f"rewrite table: expected columns {_TABLE_SCHEMA.names}, missing {missing}")
        cols = [data[n].to_pylist() for n in _TABLE_SCHEMA.names]
        return cls((Rewrite(s, t, int(n), float(p), float(q)) for s, t, n, p, q in zip(*cols, strict=True)), **kwargs)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as Parquet, atomically (a temporary file renamed into place)."""
        meta = {b"homeloop": json.dumps({"version": self.version, "info": self.info}, default=str).encode()}
        data = self.to_arrow().replace_schema_metadata(meta)
        return _atomic(Path(path), lambda tmp: pq.write_table(data, tmp))

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON (``{"version", "info", "rewrites": [...]}``), atomically."""
        body = {
            "version": self.version,
            "info": self.info,
            "rewrites": [
                {
                    "source_text": r.source,
                    "target_text": r.target,
                    "support": r.support,
                    "source_success_prob": r.source_success_prob,
                    "target_success_prob": r.target_success_prob,
                }
                for r in self.rewrites
            ],
        }
        text = json.dumps(body, indent=1, default=str)
        return _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RewriteTable:
        """Read a table written by :meth:`to_parquet` or :meth:`to_json` (by the file's suffix)."""
        p = Path(path)
        if not p.exists():
            from homeloop.errors import MissingInputError

            raise MissingInputError(f"rewrite table {p}: expected a .parquet or .json file, found nothing")
        if p.suffix == ".json":
            body = json.loads(p.read_text(encoding="utf-8"))
            return cls.from_arrow(
                pa.Table.from_pylist(body["rewrites"], schema=_TABLE_SCHEMA),
                version=body.get("version"),
                info=body.get("info"),
            )
        if p.suffix == ".parquet":
            data = pq.read_table(p)
            meta = json.loads((data.schema.metadata or {}).get(b"homeloop", b"{}"))
            return cls.from_arrow(data, version=meta.get("version"), info=meta.get("info"))
        from homeloop.errors import UnsupportedFormatError

        raise UnsupportedFormatError(f"rewrite table {p}: expected a .parquet or .json file, got {p.suffix!r}")


def _atomic(path: Path, write: Callable[[str], Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
