"""Embedders by name: the real one loads lazily, the fake is for tests."""

from __future__ import annotations

from collections.abc import Callable

from kbase.embed.base import Embedder, Vectors
from kbase.errors import ConfigError


def _minilm() -> Embedder:
    from kbase.embed.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


def _fake() -> Embedder:
    from kbase.embed.fake import HashingEmbedder

    return HashingEmbedder()


EMBEDDERS: dict[str, Callable[[], Embedder]] = {"minilm": _minilm, "fake": _fake}


def get_embedder(name: str) -> Embedder:
    """The embedder registered as ``name``."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDERS))
        raise ConfigError(f"unknown embedder {name!r}: choose one of {known}") from None
    return factory()


__all__ = ["EMBEDDERS", "Embedder", "Vectors", "get_embedder"]
