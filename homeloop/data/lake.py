"""The data lake: partitioned Parquet files, one folder per dataset and table.

Layout::

    <lake>/<dataset>/<table>/date=YYYY-MM-DD/part-<id>.parquet   (tables partitioned by a time field)
    <lake>/<dataset>/<table>/part-<id>.parquet                   (small tables)
    <lake>/<dataset>/_quarantine/<table>/<source>-<digest>.jsonl  (rows that failed validation)

Guarantees:

- *Idempotent*: a row whose key (see :mod:`homeloop.data.schema`) is already in
  its partition is not written again, so ingesting the same input twice adds
  nothing.
- *Atomic per partition*: each file is written under a hidden temporary name and
  renamed into place, so a crash leaves no partial file that readers would see
  (readers skip names starting with ``.`` or ``_``). Re-running an interrupted
  ingest adds exactly the partitions that are missing.
- *Validated*: :meth:`Lake.ingest` checks every record; a bad one goes to the
  quarantine file with its line number and the reason, the rest goes in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from homeloop.data.schema import Table, table, validate_record
from homeloop.errors import InvalidInputError, SchemaError

__all__ = ["IngestResult", "Lake"]

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# a dataset being written by Lake.staging: hidden from datasets(), renamed into place when complete
_STAGING_NAME = re.compile(r"^\.staging-[0-9a-f]{12}-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_SEP = "\x1f"


@dataclass(frozen=True)
class IngestResult:
    """What one write or ingest did."""

    table: str
    rows_in: int
    written: int
    duplicates: int
    quarantined: int
    quarantine_path: Path | None = None

    def __add__(self, other: IngestResult) -> IngestResult:
        """The counts of two writes into the same table, added (the later quarantine file wins)."""
        return IngestResult(
            self.table,
            self.rows_in + other.rows_in,
            self.written + other.written,
            self.duplicates + other.duplicates,
            self.quarantined + other.quarantined,
            other.quarantine_path or self.quarantine_path,
        )

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["quarantine_path"] = str(self.quarantine_path) if self.quarantine_path else None
        return d


class Lake:
    """Partitioned Parquet tables under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths

    def path(self, dataset: str, table_name: str | None = None) -> Path:
        if not (_DATASET_NAME.match(dataset or "") or _STAGING_NAME.match(dataset or "")):
            raise InvalidInputError(
                f"dataset name {dataset!r}: expected letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        p = self.root / dataset
        return p / table(table_name).name if table_name else p

    def datasets(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _DATASET_NAME.match(p.name))

    def tables(self, dataset: str) -> list[str]:
        base = self.path(dataset)
        if not base.exists():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))

    def has(self, dataset: str, table_name: str) -> bool:
        p = self.path(dataset, table_name)
        return p.exists() and any(p.rglob("part-*.parquet"))

    def drop(self, dataset: str) -> None:
        """Delete a whole dataset (used before re-simulating into the same name)."""
        p = self.path(dataset)
        if p.exists():
            tmp = p.with_name(f".drop-{p.name}-{uuid.uuid4().hex[:8]}")
            p.rename(tmp)  # atomic: readers never see a half-deleted dataset
            shutil.rmtree(tmp)

    @contextlib.contextmanager
    def staging(self, dataset: str) -> Iterator[str]:
        """Write a whole dataset out of sight, then let it replace ``dataset`` in one step.

        Yields the name of a hidden dataset to write into. When the block ends
        normally the hidden dataset takes ``dataset``'s place (an older one of that
        name is dropped); when it raises, the hidden dataset is deleted and
        ``dataset`` is left as it was.
        """
        target = self.path(dataset)
        name = f".staging-{uuid.uuid4().hex[:12]}-{dataset}"
        tmp = self.root / name
        try:
            yield name
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.mkdir(parents=True, exist_ok=True)
        old = target.with_name(f".drop-{target.name}-{uuid.uuid4().hex[:8]}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        _fsync_dir(self.root)
        shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------ writing

    def write(
        self,
        dataset: str,
        table_name: str,
        data: pa.Table | list[dict[str, Any]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Write typed rows (already valid), skipping rows whose key is already there."""
        tbl = table(table_name)
        arrow = data if isinstance(data, pa.Table) else pa.Table.from_pylist(data, schema=tbl.arrow_schema)
        arrow = _conform(arrow, tbl)
        base = self.path(dataset, tbl.name)
        base.mkdir(parents=True, exist_ok=True)
        written = 0
        with _locked(base):
            for part_dir, part in _partitions(arrow, tbl, base):
                written += _write_partition(part_dir, part, tbl)
                if progress:
                    progress(part.num_rows)
        return IngestResult(tbl.name, arrow.num_rows, written, arrow.num_rows - written, 0)

    def ingest(
        self,
        dataset: str,
        table_name: str,
        records: Iterable[tuple[int, Any]],
        *,
        source: str,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Validate ``(line_number, record)`` pairs and write the good ones.

        A record that is not a mapping, or that fails :func:`validate_record`, goes to
        the quarantine file with its line number and the reason. ``source`` names the
        input in the quarantine file.
        """
        tbl = table(table_name)
        good: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for line, record in records:
            try:
                if isinstance(record, SchemaError):  # a reader could not even parse the line
                    raise record
                good.append(validate_record(tbl, record))
            except SchemaError as exc:
                bad.append({"source": source, "line": line, "reason": str(exc), "record": _jsonable(record)})
        result = self.write(dataset, tbl.name, good, progress=progress) if good else None
        qpath = self._quarantine(dataset, tbl, source, bad) if bad else None
        return IngestResult(
            tbl.name,
            len(good) + len(bad),
            result.written if result else 0,
            result.duplicates if result else 0,
            len(bad),
            qpath,
        )

    def _quarantine(self, dataset: str, tbl: Table, source: str, bad: list[dict[str, Any]]) -> Path:
        body = "".join(json.dumps(b, sort_keys=True, default=str) + "\n" for b in bad)
        digest = hashlib.sha256(body.encode()).hexdigest()[:12]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).name)[:60] or "input"
        qdir = self.path(dataset) / "_quarantine" / tbl.name
        qdir.mkdir(parents=True, exist_ok=True)
        path = qdir / f"{stem}-{digest}.jsonl"
        _atomic_write_bytes(path, body.encode())
        return path

    # ------------------------------------------------------------------ reading

    def read(
        self,
        dataset: str,
        table_name: str,
        *,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,
    ) -> pa.Table:
        """Read a table (empty, with its schema, when nothing was written)."""
        tbl = table(table_name)
        base = self.path(dataset, tbl.name)
        files = sorted(str(p) for p in base.rglob("part-*.parquet")) if base.exists() else []
        if not files:
            empty = tbl.arrow_schema.empty_table()
            return empty.select(columns) if columns else empty
        data = pads.dataset(files, schema=tbl.arrow_schema, format="parquet")
        return data.to_table(columns=columns, filter=filter)

    def connect(self, dataset: str):  # -> duckdb.DuckDBPyConnection
        """A DuckDB connection with one view per table of ``dataset``."""
        import duckdb

        con = duckdb.connect()
        for name in self.tables(dataset):
            files = sorted(str(p) for p in self.path(dataset, name).rglob("part-*.parquet"))
            if files:
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r}, union_by_name=true)")
        return con


# ---------------------------------------------------------------------- helpers


def _conform(arrow: pa.Table, tbl: Table) -> pa.Table:
    schema = tbl.arrow_schema
    missing = [n for n in schema.names if n not in arrow.column_names]
    for n in missing:
        if not tbl[n].required or arrow.num_rows == 0:
            arrow = arrow.append_column(
                pa.field(n, schema.field(n).type), pa.nulls(arrow.num_rows, schema.field(n).type)
            )
        else:
            raise SchemaError(f"table {tbl.name!r}: column {n!r} is required but missing")
    extra = [n for n in arrow.column_names if n not in schema.names]
    if extra:
        raise SchemaError(f"table {tbl.name!r}: unknown column {extra[0]!r}")
    try:
        return arrow.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"table {tbl.name!r}: {exc}") from None


def _partitions(arrow: pa.Table, tbl: Table, base: Path) -> Iterator[tuple[Path, pa.Table]]:
    if tbl.partition_by is None or arrow.num_rows == 0:
        yield base, arrow
        return
    days = pc.strftime(arrow[tbl.partition_by], format="%Y-%m-%d", locale="C")
    arrow = arrow.append_column("__day", days)
    for day in pc.unique(days).to_pylist():
        part = arrow.filter(pc.equal(arrow["__day"], day)).drop_columns(["__day"])
        yield base / f"date={day}", part


def _keys(arrow: pa.Table, key: tuple[str, ...]) -> pa.Array:
    cols = []
    for name in key:
        col = arrow[name]
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.int64())
        cols.append(pc.cast(col, pa.string()))
    if len(cols) == 1:
        return cols[0].combine_chunks() if isinstance(cols[0], pa.ChunkedArray) else cols[0]
    joined = pc.binary_join_element_wise(*cols, _KEY_SEP)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _write_partition(part_dir: Path, part: pa.Table, tbl: Table) -> int:
    part_dir.mkdir(parents=True, exist_ok=True)
    for stale in part_dir.glob(".part-*.tmp"):  # left by a crash; never visible to readers
        stale.unlink(missing_ok=True)
    keys = _keys(part, tbl.key)
    # drop duplicates inside the batch: keep the first occurrence of each key
    uniq_idx = _first_occurrences(keys)
    if len(uniq_idx) < len(keys):
        part = part.take(uniq_idx)
        keys = keys.take(uniq_idx)
    existing = [p for p in part_dir.glob("part-*.parquet")]
    if existing:
        old = pads.dataset([str(p) for p in existing], format="parquet").to_table(columns=list(tbl.key))
        seen = _keys(old, tbl.key)
        part = part.filter(pc.invert(pc.is_in(keys, value_set=seen)))
    if part.num_rows == 0:
        return 0
    final = part_dir / f"part-{uuid.uuid4().hex}.parquet"
    tmp = part_dir / f".{final.stem}.tmp"
    pq.write_table(part, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(part_dir)
    return part.num_rows


def _first_occurrences(keys: pa.Array) -> pa.Array:
    rows = pa.table({"k": keys, "i": pa.array(range(len(keys)), pa.int64())})
    firsts = rows.group_by("k", use_threads=False).aggregate([("i", "min")])["i_min"]
    firsts = firsts.combine_chunks() if isinstance(firsts, pa.ChunkedArray) else firsts
    return pc.take(firsts, pc.array_sort_indices(firsts))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    with open(base / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _jsonable(record: Any) -> Any:
    if isinstance(record, SchemaError):
        return None
    try:
        json.dumps(record, default=str)
        return record
    except (TypeError, ValueError):
        return repr(record)
