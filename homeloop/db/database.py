"""Opening the operational database and migrating it with Alembic.

The migrations live inside the package (``homeloop/db/migrations``) and are run
in code with a configuration built here, so no ``alembic.ini`` is needed::

    db = open_database("sqlite:///homeloop-workspace/homeloop.db")   # migrates to head
    with db.session() as session:
        ...

To write the next migration, change :mod:`homeloop.db.models`, then generate a
draft against a database at head and edit it::

    from alembic import command
    from homeloop.db import alembic_config
    command.revision(alembic_config("sqlite:///scratch.db"), "add hunches", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.orm import Session, sessionmaker

from homeloop.db.models import Base
from homeloop.errors import DatabaseError, InvalidInputError

__all__ = ["MIGRATIONS_PATH", "VERSION_TABLE", "Database", "alembic_config", "open_database", "safe_url"]

MIGRATIONS_PATH = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE = "homeloop_alembic_version"
_SQLITE_BEGIN = "homeloop_sqlite_begin"  # execution option read by the SQLite "begin" hook
_PG_CONNECT_TIMEOUT_S = 10
_MIGRATION_LOCK = 0x686F6D656C6F6F70  # PostgreSQL advisory lock key held while migrating ("homeloop")


def _parse_url(url: str | sa.URL) -> sa.URL:
    if isinstance(url, sa.URL):
        parsed = url
    else:
        try:
            parsed = sa.make_url(os.fspath(url))
        except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"database URL {url!r}: expected e.g. 'sqlite:///path/homeloop.db' or "
                f"'postgresql+psycopg://user:password@host:5432/dbname' ({exc})"
            ) from None
    # homeloop ships psycopg 3; a bare postgresql:// would ask for psycopg2, which is not installed
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | sa.URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    try:
        return _parse_url(url).render_as_string(hide_password=True)
    except InvalidInputError:
        return "<unparseable database URL>"


def alembic_config(url: str | sa.URL, *, connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for homeloop's migrations on ``url``.

    When ``connection`` is given, migrations run on it (inside its transaction).
    """
    parsed = _parse_url(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_PATH))
    cfg.set_main_option("version_table", VERSION_TABLE)
    # ConfigParser interpolation: a '%' in a password must be doubled
    cfg.set_main_option("sqlalchemy.url", parsed.render_as_string(hide_password=False).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest migration this version of homeloop knows."""
    script = ScriptDirectory(str(MIGRATIONS_PATH))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise DatabaseError(f"no migrations found in {MIGRATIONS_PATH}")
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in ScriptDirectory(str(MIGRATIONS_PATH)).walk_revisions())


class Database:
    """An engine and a session factory on one operational database.

    Use :func:`open_database` to get one. ``url`` is the address with the
    password hidden, safe to print.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._password = engine.url.password
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._checked = False

    # ------------------------------------------------------------ lifecycle

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    # ------------------------------------------------------------ sessions

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on an exception.

        ``immediate=True`` takes SQLite's write lock when the transaction
        begins (``BEGIN IMMEDIATE``), for read-then-write transactions that must
        not interleave; other writers wait for it. On PostgreSQL it changes
        nothing (lock rows or use an advisory lock there).
        """
        self.check()
        with self._translate("use"), self._sessions() as session, session.begin():
            if immediate and self.dialect == "sqlite":
                session.connection(execution_options={_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            yield session

    # ------------------------------------------------------------ migrations

    def current_revision(self) -> str | None:
        """The migration the database is at, or None for an empty (never migrated) database."""
        with self._translate("read the revision of"), self.engine.connect() as conn:
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()

    def head_revision(self) -> str:
        """The newest migration this version of homeloop knows."""
        return head_revision()

    def is_current(self) -> bool:
        """Whether the database is migrated to the newest migration."""
        return self.current_revision() == head_revision()

    def check(self) -> None:
        """Raise :class:`DatabaseError` unless the database is at the newest migration."""
        if self._checked:
            return
        current, head = self.current_revision(), head_revision()
        if current != head:
            self._refuse_unknown(current)
            raise DatabaseError(
                f"database {self.url} is at migration {current!r}, expected {head!r}: run `homeloop db upgrade` "
                "(or open it with open_database(url, upgrade=True))"
            )
        self._checked = True

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the database forward to ``revision`` (default: the newest)."""
        self._refuse_unknown(self.current_revision())
        self._migrate(command.upgrade, revision)

    def _refuse_unknown(self, current: str | None) -> None:
        if current is not None and current not in _known_revisions():
            raise DatabaseError(
                f"database {self.url} is at migration {current!r}, which this version of homeloop does not know "
                f"(its newest is {head_revision()!r}); was it migrated by a newer homeloop?"
            )

    def downgrade(self, revision: str = "base") -> None:
        """Migrate the database back to ``revision`` (``"base"``: drop every homeloop table)."""
        self._migrate(command.downgrade, revision)

    def _migrate(self, fn: Any, revision: str) -> None:
        # One migrator at a time: processes that open a fresh database together
        # (service workers, parallel commands) wait here, then find it migrated.
        self._checked = False
        with self._translate("migrate"), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(**{_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                try:
                    fn(alembic_config(self.engine.url, connection=conn), revision)
                except CommandError as exc:
                    raise DatabaseError(f"cannot migrate database {self.url} to {revision!r}: {exc}") from None

    # ------------------------------------------------------------ figures

    def row_counts(self) -> dict[str, int | None]:
        """Rows in each homeloop table (None for a table that does not exist yet)."""
        counts: dict[str, int | None] = {}
        with self._translate("count rows in"), self.engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            for table in Base.metadata.sorted_tables:
                if table.name in existing:
                    counts[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                else:
                    counts[table.name] = None
        return counts

    # ------------------------------------------------------------ errors

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn connection failures into a DatabaseError that names the URL, password hidden."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            message = "; ".join(line.strip() for line in reason if line.strip())
            if self._password:
                message = message.replace(self._password, "***")
            raise DatabaseError(f"cannot {action} database {self.url}: {message}") from None


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    # pysqlite opens transactions lazily and on its own terms; take over so that
    # BEGIN happens when SQLAlchemy begins (consistent reads, transactional DDL),
    # and so that a session can ask for BEGIN IMMEDIATE.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_SQLITE_BEGIN, "BEGIN"))


def open_database(url: str | sa.URL, *, upgrade: bool = True, echo: bool = False) -> Database:
    """Open the operational database at ``url`` and, by default, migrate it to the newest schema.

    ``url`` is an SQLAlchemy URL: ``sqlite:///path/to/homeloop.db`` (its folder
    is created) or ``postgresql+psycopg://user:password@host:port/dbname``
    (``postgresql://`` means the same). With ``upgrade=False`` the schema is
    left as it is, and sessions raise :class:`DatabaseError` until it is
    migrated.

    Raises :class:`DatabaseError`, naming the URL with its password hidden,
    when the database cannot be reached or migrated.
    """
    parsed = _parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the folder {folder} for database {shown}: {exc}") from None
        connect_args["timeout"] = 30.0  # seconds a writer waits for another's lock
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
    try:
        engine = sa.create_engine(parsed, echo=echo, connect_args=connect_args, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
        raise DatabaseError(f"cannot open database {shown}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _install_sqlite_hooks(engine)
    db = Database(engine)
    try:
        with db._translate("connect to"), engine.connect():
            pass
        if upgrade and not db.is_current():
            db.upgrade()
    except BaseException:
        engine.dispose()
        raise
    return db
