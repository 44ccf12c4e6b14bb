"""Shared fixtures: every test gets its own knowledge-base folder and cache."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kbase.config import Settings
from kbase.embed.fake import HashingEmbedder
from kbase.kb import KnowledgeBase
from kbase.llm import register_backend
from kbase.llm.fake import ScriptedLLM
from tests.fakeworld import world_llm

register_backend("fake-world", lambda **_: world_llm())


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBASE_HOME", str(tmp_path / "kb-home"))
    monkeypatch.delenv("KBASE_DATABASE_URL", raising=False)


OpenKB = Callable[..., KnowledgeBase]
PG_SERVER = "postgresql://127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh schema of the local PostgreSQL server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"kbtest_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER.replace("postgresql:", "postgresql+psycopg:"))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test on SQLite (None: the default file in the folder) and on PostgreSQL."""
    if request.param == "sqlite":
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
