"""The operational database: migrations, model registry, ingestion log, CLI; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.db import (
    Base,
    ModelRegistry,
    ModelStatus,
    Rewrite,
    head_revision,
    list_ingestions,
    open_database,
    record_ingestion,
    safe_url,
)
from homeloop.db.database import VERSION_TABLE
from homeloop.db.models import Model
from homeloop.errors import DatabaseError, HomeloopError, InvalidInputError, MissingInputError

TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture
def db(database_url):
    database = open_database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def artefact(tmp_path):
    folder = tmp_path / "models" / "nlu-artefact"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    return folder


def _tables(database) -> set[str]:
    with database.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _run_together(functions, *, timeout_s: float = 60.0) -> list:
    """Start each function in its own thread at the same moment; return their results in order or raise."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = functions[i]()
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(functions))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout_s} s (deadlock?)"
    assert not errors, errors
    return results


# ---------------------------------------------------------------- migrations


def test_migrates_empty_database_to_head_then_down_and_up_again(database_url):
    with open_database(database_url, upgrade=False) as database:
        assert database.current_revision() is None
        assert not TABLES & _tables(database)
        assert database.row_counts() == dict.fromkeys(TABLES)

        database.upgrade()
        assert database.current_revision() == head_revision()
        assert _tables(database) >= TABLES | {VERSION_TABLE}
        assert database.row_counts() == dict.fromkeys(TABLES, 0)

        database.downgrade("base")
        assert database.current_revision() is None
        assert not TABLES & _tables(database)

        database.upgrade()
        assert database.current_revision() == head_revision()
        assert _tables(database) >= TABLES


def test_open_upgrades_by_default_and_is_idempotent(database_url):
    with open_database(database_url) as first:
        assert first.is_current()
    with open_database(database_url) as second:  # already at head: nothing to do, no error
        assert second.current_revision() == head_revision()


def test_processes_opening_a_fresh_database_together_migrate_it_once(database_url):
    """Service workers starting at once all upgrade on open; one migrates, the others wait and find it done."""

    def opener() -> str | None:
        with open_database(database_url) as database:
            return database.current_revision()

    assert _run_together([opener] * 3) == [head_revision()] * 3


def test_models_match_the_migrations(db):
    """The declarative models and the migration scripts describe the same schema."""
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE}), Base.metadata
        )
    assert diff == []


def test_unmigrated_database_gives_a_clear_error(database_url):
    with open_database(database_url, upgrade=False) as database:
        with pytest.raises(DatabaseError, match=rf"expected '{head_revision()}'.*homeloop db upgrade") as info:
            ModelRegistry(database).list()
        assert safe_url(database_url) in str(info.value)


def test_database_from_a_newer_homeloop_is_refused(db):
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with open_database(db.engine.url, upgrade=False) as again, pytest.raises(DatabaseError, match="newer homeloop"):
        ModelRegistry(again).list()
    with pytest.raises(DatabaseError, match=r"at migration '9999', which this version of homeloop does not know"):
        open_database(db.engine.url)  # and upgrading it is refused too


def test_unreachable_postgres_names_the_url_without_password():
    url = "postgresql+psycopg://homeloop:s3cret-pw@127.0.0.1:1/homeloop"
    with pytest.raises(DatabaseError) as info:
        open_database(url)
    message = str(info.value)
    assert "postgresql+psycopg://homeloop:***@127.0.0.1:1/homeloop" in message
    assert "s3cret-pw" not in message
    assert isinstance(info.value, HomeloopError) and isinstance(info.value, RuntimeError)


def test_plain_postgresql_url_uses_psycopg_and_hides_password():
    assert safe_url("postgresql://u:p%40ss@db.example:5432/hl") == "postgresql+psycopg://u:***@db.example:5432/hl"


def test_bad_url_is_an_invalid_input():
    with pytest.raises(InvalidInputError, match="database URL 'not a url'"):
        open_database("not a url")


def test_sqlite_folder_is_created(tmp_path):
    path = tmp_path / "deep" / "er" / "homeloop.db"
    with open_database(f"sqlite:///{path}") as database:
        assert database.is_current()
    assert path.is_file()


# ---------------------------------------------------------------- model registry


def test_register_numbers_versions_per_name(db, artefact):
    registry = ModelRegistry(db)
    before = datetime.now(UTC)
    first = registry.register("nlu", artefact, kind="intent-slot", metrics={"intent_accuracy": 0.81})
    second = registry.register("nlu", artefact, kind="intent-slot", metrics={"intent_accuracy": 0.84})
    other = registry.register("device-embedding", artefact, kind="hetero-gnn")
    third = registry.register("nlu", str(artefact), kind="intent-slot", metrics={"intent_accuracy": 0.83})
    after = datetime.now(UTC)

    assert [first.version, second.version, third.version, other.version] == [1, 2, 3, 1]
    assert first.status is ModelStatus.CANDIDATE and first.promoted_at is None
    assert first.path == artefact
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= first.created_at <= after + timedelta(seconds=1)

    assert registry.latest("nlu") == third
    assert registry.get("nlu") == third
    assert registry.get("nlu", 2) == second
    assert registry.get("nlu", 2).metrics == {"intent_accuracy": 0.84}
    assert registry.latest("unknown") is None
    assert registry.promoted("nlu") is None
    assert [(r.name, r.version) for r in registry.list()] == [
        ("device-embedding", 1),
        ("nlu", 1),
        ("nlu", 2),
        ("nlu", 3),
    ]
    assert [r.version for r in registry.list("nlu")] == [1, 2, 3]
    assert json.loads(json.dumps(third.as_dict()))["status"] == "candidate"

    with pytest.raises(
        InvalidInputError, match=r"model 'nlu' version 7: not registered \(registered versions: 1, 2, 3\)"
    ):
        registry.get("nlu", 7)
    with pytest.raises(InvalidInputError, match="found no version"):
        registry.get("unknown")


def test_promoted_reads_the_status_column(db, artefact):
    registry = ModelRegistry(db)
    registry.register("nlu", artefact, kind="intent-slot")
    v2 = registry.register("nlu", artefact, kind="intent-slot")
    with db.session() as session:  # what the update gate will do
        row = session.scalar(sa.select(Model).where(Model.name == "nlu", Model.version == 2))
        row.status, row.promoted_at = ModelStatus.PROMOTED.value, datetime.now(UTC)
    promoted = registry.promoted("nlu")
    assert promoted is not None and promoted.version == v2.version and promoted.status is ModelStatus.PROMOTED


def test_register_checks_its_inputs(db, artefact, tmp_path):
    registry = ModelRegistry(db)
    with pytest.raises(MissingInputError, match="nowhere"):
        registry.register("nlu", tmp_path / "nowhere", kind="intent-slot")
    with pytest.raises(InvalidInputError, match="model name ''"):
        registry.register("", artefact, kind="intent-slot")
    with pytest.raises(InvalidInputError, match=r"metrics\['bad'\]: expected a JSON value"):
        registry.register("nlu", artefact, kind="intent-slot", metrics={"bad": object()})
    assert registry.list() == []  # nothing half-written


def test_json_columns_round_trip(db, artefact):
    metrics = {
        "intent_accuracy": np.float32(0.875),
        "per_intent": {"lights_on": 0.9, "télé_allumer": 1.0},
        "confusion": np.array([[3, 1], [0, 4]]),
        "undefined_f1": float("nan"),
        "n": np.int64(1234),
    }
    params = {"epochs": 3, "lr": 1e-3, "layers": [384, 128], "dp": {"epsilon": 8.0, "enabled": True}, "seed": None}
    data = {"dataset": "hwu64", "split": "train", "rows": 8954, "created": datetime(2026, 3, 1, tzinfo=UTC)}
    record = ModelRegistry(db).register("nlu", artefact, kind="intent-slot", metrics=metrics, params=params, data=data)
    again = ModelRegistry(db).get("nlu", record.version)
    assert again.metrics == {
        "intent_accuracy": 0.875,
        "per_intent": {"lights_on": 0.9, "télé_allumer": 1.0},
        "confusion": [[3, 1], [0, 4]],
        "undefined_f1": None,
        "n": 1234,
    }
    assert again.params == params
    assert again.data == {"dataset": "hwu64", "split": "train", "rows": 8954, "created": "2026-03-01T00:00:00+00:00"}


def test_concurrent_registers_never_share_a_version(database_url, artefact):
    """Two writers, each with its own engine (as two processes would have), register at once."""
    per_writer = 12
    databases = [open_database(database_url), open_database(database_url, upgrade=False)]

    def writer(database) -> list[int]:
        return [
            ModelRegistry(database).register("nlu", artefact, kind="intent-slot").version for _ in range(per_writer)
        ]

    try:
        taken = _run_together([lambda d=d: writer(d) for d in databases])
        assert sorted(v for versions in taken for v in versions) == list(range(1, per_writer * len(databases) + 1))
        assert [r.version for r in ModelRegistry(databases[0]).list("nlu")] == list(range(1, 2 * per_writer + 1))
    finally:
        for d in databases:
            d.dispose()


def test_unique_name_version_is_enforced_by_the_database(db, artefact):
    ModelRegistry(db).register("nlu", artefact, kind="intent-slot")
    with pytest.raises(sa.exc.IntegrityError), db.session() as session:
        session.add(
            Model(name="nlu", version=1, path=str(artefact), kind="intent-slot", metrics={}, params={}, data={})
        )
    assert [r.version for r in ModelRegistry(db).list()] == [1]


# ---------------------------------------------------------------- ingestion log, rewrites, timestamps


def test_record_ingestion_of_a_real_lake_ingest(db, lake, tmp_path):
    lines = [
        {"home_id": "home-1", "name": "Flat"},
        {"name": "no id"},
        {"home_id": "home-2", "timezone": "Europe/Paris"},
    ]
    source = tmp_path / "homes.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    started = datetime.now(timezone(timedelta(hours=2)))  # any zone: stored and read back as UTC
    result = lake.ingest("demo", "homes", enumerate(lines, start=1), source=str(source))

    record = record_ingestion(db, result, dataset="demo", source=source, sha256=digest, started_at=started)
    assert (record.rows_in, record.written, record.duplicates, record.quarantined) == (3, 2, 0, 1)
    assert record.quarantine_path == str(result.quarantine_path)
    assert record.started_at == started and record.started_at.utcoffset() == timedelta(0)
    assert record.finished_at >= record.started_at

    again = lake.ingest("demo", "homes", enumerate(lines, start=1), source=str(source))
    record_ingestion(db, again.as_dict(), dataset="demo", source=source, sha256=digest, started_at=datetime.now(UTC))
    logged = list_ingestions(db, dataset="demo")
    assert [(r.written, r.duplicates) for r in logged] == [(0, 2), (2, 0)]  # newest first
    assert logged[1] == record
    assert list_ingestions(db, dataset="other") == []


def test_record_ingestion_refuses_naive_times_and_bad_digests(db, lake):
    result = lake.write("demo", "homes", [{"home_id": "h"}])
    with pytest.raises(InvalidInputError, match="naive"):
        record_ingestion(db, result, dataset="demo", source="x", sha256=None, started_at=datetime.now())
    with pytest.raises(InvalidInputError, match="sha256 'abc'"):
        record_ingestion(db, result, dataset="demo", source="x", sha256="abc", started_at=datetime.now(UTC))
    assert db.row_counts()["ingestions"] == 0


def test_rewrites_table_round_trip(db):
    with db.session() as session:
        session.add_all(
            [
                Rewrite(
                    source_text="play maj and dragons",
                    target_text="play imagine dragons",
                    support=42,
                    source_success_prob=0.12,
                    target_success_prob=0.93,
                    table_version=1,
                ),
                Rewrite(
                    source_text="turn of the lights",
                    target_text="turn off the lights",
                    support=7,
                    source_success_prob=0.3,
                    target_success_prob=0.88,
                    table_version=1,
                ),
            ]
        )
    with db.session() as session:
        rows = session.scalars(
            sa.select(Rewrite).where(Rewrite.table_version == 1, Rewrite.source_text == "play maj and dragons")
        ).all()
        assert [(r.target_text, r.support) for r in rows] == [("play imagine dragons", 42)]
        assert rows[0].created_at.tzinfo is not None
    assert db.row_counts()["rewrites"] == 2


# ---------------------------------------------------------------- CLI


def test_cli_status_and_upgrade(database_url, tmp_path, monkeypatch, artefact):
    monkeypatch.setenv("HOMELOOP_DATABASE_URL", database_url)
    runner = CliRunner()
    ws = ["--workspace", str(tmp_path / "ws")]

    result = runner.invoke(app, [*ws, "db", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["url"] == safe_url(database_url)
    assert (status["current_revision"], status["head_revision"], status["up_to_date"]) == (None, head_revision(), False)

    result = runner.invoke(app, [*ws, "db", "upgrade", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"url": None} == {"url": None, "from_revision": None, "to_revision": head_revision()}

    with open_database(database_url) as database:
        ModelRegistry(database).register("nlu", artefact, kind="intent-slot")
    result = runner.invoke(app, [*ws, "db", "status", "--json"])
    status = json.loads(result.stdout)
    assert status["up_to_date"] is True
    assert status["rows"] == {**dict.fromkeys(TABLES, 0), "models": 1}

    result = runner.invoke(app, [*ws, "db", "status"])  # the table form
    assert result.exit_code == 0 and head_revision() in result.stdout


def test_cli_unreachable_database(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMELOOP_DATABASE_URL", "postgresql://homeloop:hunter2@127.0.0.1:1/homeloop")
    result = CliRunner().invoke(app, ["--workspace", str(tmp_path / "ws"), "db", "status"])
    assert result.exit_code == 2  # the DatabaseError, as one line on stderr
    assert "127.0.0.1:1" in result.output and "hunter2" not in result.output
