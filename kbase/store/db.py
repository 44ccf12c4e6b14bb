"""Opening a database: engine settings per dialect and migrations applied on open."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from kbase.errors import ConfigError, StoreError, missing_extra, redact

MIGRATIONS = Path(__file__).parent / "migrations"
#: A new SQLite store is readable by its owner only (its WAL and shared-memory files
#: take the same mode from it).
FILE_MODE = 0o600


def sqlite_url(folder: Path) -> str:
    """The URL of the SQLite store in ``folder``; refused when the folder's path would
    be read as something else in a URL (``kb/outside.db?x=`` names ``kb/outside.db``)."""
    path = str(folder / "kbase.db")
    url = f"sqlite:///{path}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.database != path or parsed.query:
        raise StoreError(
            f"the knowledge-base folder {folder!s} has a character a database URL reads "
            "otherwise ('?', '#' or '%'): choose a folder without them"
        )
    return url


def create_sqlite_file(path: Path) -> None:
    """Create an empty store file readable by its owner only, if there is none yet."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while a writer runs; secure_delete overwrites deleted
    # content so a forgotten document leaves no bytes in free pages.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql://...``)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"bad database URL {redact(url)!r}: use sqlite:///PATH or postgresql://HOST/DB"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise missing_extra("psycopg", "postgres") from exc
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.drivername == "sqlite":
        # A pooled connection: closing the last connection to a WAL database
        # checkpoints it, which would cost milliseconds on every transaction.
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    raise ConfigError(f"unsupported database {parsed.drivername!r}: use SQLite or PostgreSQL")


#: The newest migration's revision (a test checks that it is alembic's head).
SCHEMA_HEAD = "0005"


def schema_revision(connection: Connection) -> str | None:
    """The revision the database's schema is at (None: not a kbase schema yet)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (named, ordered, transactional)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the database: {_first_line(exc)}; check the path or URL"
        ) from exc
    except DBAPIError as exc:
        raise _unreadable(engine, exc) from exc


def open_engine(url: str) -> Engine:
    """Create the engine, check the connection and apply migrations."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            current = schema_revision(connection)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to the database: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        engine.dispose()
        raise _unreadable(engine, exc) from exc
    if current == SCHEMA_HEAD:
        return engine  # alembic (a quarter of a second to import) only when needed
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _first_line(exc: DBAPIError) -> str:
    lines = redact(str(exc.orig)).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _unreadable(engine: Engine, exc: DBAPIError) -> StoreError:
    """The error for a store file that is not a database (truncated, overwritten)."""
    where = engine.url.database if engine.dialect.name == "sqlite" else "the database"
    return StoreError(
        f"cannot read {where}: {_first_line(exc)}; it is damaged or not a kbase store "
        "(restore it from a backup, or move it away to start a new knowledge base)"
    )


def checkpoint_sqlite(engine: Engine) -> None:
    """Fold the write-ahead log into the database and truncate it, so deleted rows
    leave no copy there (secure_delete already zeroes them in the database file)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def purge(engine: Engine) -> list[str]:
    """Rewrite the store's files so that deleted rows leave no bytes in them; returns
    what ran. PostgreSQL: ``VACUUM FULL`` of every kbase table of the schema (new
    files, the old ones unlinked; it locks each table while it runs), then a
    ``CHECKPOINT`` where the role may run one; the server's write-ahead log keeps
    the old bytes until it recycles its segments. SQLite: ``VACUUM`` and a truncating
    checkpoint (``secure_delete`` already zeroes deleted rows in place)."""
    from kbase.store.models import Base

    ran: list[str] = []
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            schema = connection.execute(text("SELECT current_schema()")).scalar() or "public"
            preparer = engine.dialect.identifier_preparer
            for table in Base.metadata.sorted_tables:
                name = f"{preparer.quote(schema)}.{preparer.quote(table.name)}"
                connection.execute(text(f"VACUUM FULL {name}"))
            ran.append(f"VACUUM FULL of {len(Base.metadata.sorted_tables)} tables")
            try:
                connection.execute(text("CHECKPOINT"))
                ran.append("CHECKPOINT")
            except DBAPIError:
                pass  # needs superuser or pg_checkpoint: the server checkpoints on its own
        return ran
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("VACUUM"))
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return ["VACUUM", "wal_checkpoint(TRUNCATE)"]
