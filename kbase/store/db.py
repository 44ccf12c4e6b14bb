"""Opening a database: engine settings per dialect and migrations applied on open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from kbase.errors import ConfigError, StoreError, missing_extra

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'kbase.db'}"


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
            f"bad database URL {url!r}: use sqlite:///PATH or postgresql://HOST/DB"
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
        raise StoreError(f"cannot open the database: {exc.orig}; check the path or URL") from exc


def open_engine(url: str) -> Engine:
    """Create the engine, check the connection and apply migrations."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise StoreError(
            f"cannot connect to the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from exc
    migrate(engine)
    return engine


def checkpoint_sqlite(engine: Engine) -> None:
    """Fold the write-ahead log into the database and truncate it, so deleted rows
    leave no copy there (secure_delete already zeroes them in the database file)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
