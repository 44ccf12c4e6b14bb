"""Shared fixtures: every test gets its own knowledge-base folder and cache.

``KBASE_TEST_DATABASE=postgres`` runs the suite on PostgreSQL (the PostgreSQL tier
of scripts/test.sh): every knowledge base a test creates without naming a database
gets a fresh schema of the local server instead of SQLite, tests marked ``sqlite``
are skipped, and the SQLite case of a test run on both databases is skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from kbase.config import Settings
from kbase.embed.fake import HashingEmbedder
from kbase.kb import KnowledgeBase
from kbase.llm import LLMBackend, get_backend
from kbase.llm.fake import ScriptedLLM, world_llm
from kbase.paths import kb_folder
from kbase.runtime import CONFIG_FILE, Runtime

OpenKB = Callable[..., KnowledgeBase]
PG_SERVER = "postgresql://127.0.0.1:5432/test"
TEST_DATABASE = os.environ.get("KBASE_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"KBASE_TEST_DATABASE={TEST_DATABASE!r}: use sqlite or postgres")
#: The PostgreSQL tier: knowledge bases the tests create go to PostgreSQL.
ON_POSTGRES = TEST_DATABASE == "postgres"


class PostgresStores:
    """Fresh schemas and databases of the local server, each dropped by :meth:`drop_all`."""

    def __init__(self) -> None:
        self._admin: Engine | None = None
        self.schemas: list[str] = []
        self.databases: list[str] = []

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            url = PG_SERVER.replace("postgresql:", "postgresql+psycopg:")
            self._admin = create_engine(url, isolation_level="AUTOCOMMIT")
        return self._admin

    def schema(self) -> str:
        """The URL of a new, empty schema."""
        name = f"kbtest_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.execute(text(f"CREATE SCHEMA {name}"))
        self.schemas.append(name)
        return f"{PG_SERVER}?options=-csearch_path%3D{name}"

    def database(self, template: str | None = None) -> str:
        """The URL of a new database: empty, or a copy of the database ``template``
        names (which nothing may be connected to)."""
        name = f"kbtest_{uuid.uuid4().hex[:12]}"
        copy = f" TEMPLATE {make_url(template).database}" if template else ""
        with self.admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}{copy}"))
        self.databases.append(name)
        return PG_SERVER.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        if name in self.databases:
            self.databases.remove(name)

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self.admin.connect() as connection:
            for schema in self.schemas:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            for name in self.databases:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self.schemas, self.databases = [], []
        self._admin.dispose()
        self._admin = None


def database_url_of(folder: Path) -> str | None:
    """The database URL a knowledge-base folder names (None: SQLite in the folder)."""
    config = folder / CONFIG_FILE
    url = json.loads(config.read_text()).get("database_url") if config.exists() else None
    return str(url) if url else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="SQLite-specific: not run in the PostgreSQL tier")
    for item in items:
        if item.get_closest_marker("sqlite"):
            item.add_marker(skip)


#: Where the PostgreSQL tier puts the schemas of new knowledge bases: the running
#: test's (dropped after it), else the session's (module fixtures; dropped at the end).
_BUCKETS: list[PostgresStores] = []


def _open_on_postgres(original: Callable[..., Runtime]) -> Callable[..., Runtime]:
    """``Runtime.open`` that gives a new knowledge base with no database URL a fresh
    schema."""

    def open_(
        cls: type[Runtime],
        folder: str | Path | None = None,
        *,
        database_url: str | None = None,
        create: bool = True,
        **options: Any,
    ) -> Runtime:
        path = kb_folder(folder)
        new = create and (not path.exists() or path.is_dir())
        new = new and not (path / CONFIG_FILE).exists() and not (path / "kbase.db").exists()
        if new and not database_url and not os.environ.get("KBASE_DATABASE_URL"):
            database_url = _BUCKETS[-1].schema()
        return original(cls, folder, database_url=database_url, create=create, **options)

    return open_


@pytest.fixture(scope="session", autouse=True)
def _postgres_tier() -> Iterator[None]:
    if not ON_POSTGRES:
        yield
        return
    _BUCKETS.append(PostgresStores())
    original = Runtime.open.__func__  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runtime, "open", classmethod(_open_on_postgres(original)))
        try:
            yield
        finally:
            _BUCKETS.pop().drop_all()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KBASE_HOME", str(tmp_path / "kb-home"))
    monkeypatch.delenv("KBASE_DATABASE_URL", raising=False)
    if not ON_POSTGRES:
        yield
        return
    _BUCKETS.append(PostgresStores())
    try:
        yield
    finally:
        _BUCKETS.pop().drop_all()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh schema of the local PostgreSQL server, dropped afterwards."""
    stores = PostgresStores()
    try:
        yield stores.schema()
    finally:
        stores.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test on SQLite (None: the default file in the folder) and on PostgreSQL."""
    if request.param == "sqlite":
        if ON_POSTGRES:
            pytest.skip("the PostgreSQL tier runs this test as its [postgres] case")
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_kb(tmp_path: Path) -> Iterator[OpenKB]:
    """Open a knowledge base on the fake embedder and the fake-world LLM."""
    opened: list[KnowledgeBase] = []

    def factory(
        folder: Path | None = None,
        *,
        llm: ScriptedLLM | None = None,
        database_url: str | None = None,
        **settings: Any,
    ) -> KnowledgeBase:
        model = llm or world_llm()
        kb = KnowledgeBase.open(
            folder or tmp_path / "kb",
            database_url=database_url,
            settings=Settings(embedder="fake", **settings),
            embedder=HashingEmbedder(),
            backend=lambda: model,
        )
        opened.append(kb)
        return kb

    yield factory
    for kb in opened:
        kb.close()


@pytest.fixture(scope="session")
def vllm_backend() -> Iterator[LLMBackend]:
    """vLLM's in-process engine on ``$KBASE_TEST_VLLM_MODEL``, with the engine options
    in ``$KBASE_TEST_VLLM_OPTIONS`` (JSON), started once for the whole session.
    ``scripts/test-vllm.sh`` sets both up on a machine with no GPU."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        pytest.skip("vllm is not installed: bash scripts/test-vllm.sh installs and runs it")
    model = os.environ.get("KBASE_TEST_VLLM_MODEL")
    if not model:
        pytest.skip("set KBASE_TEST_VLLM_MODEL to a Hugging Face model folder to test vllm")
    options = json.loads(os.environ.get("KBASE_TEST_VLLM_OPTIONS") or "{}")
    backend = get_backend("vllm", model=model, **options)
    yield backend
    backend.close()
