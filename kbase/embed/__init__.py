"""Embedders by name: the real ones load lazily, the fake is for tests.

``minilm`` and ``minilm-onnx`` are one model, all-MiniLM-L6-v2, on two runtimes:
sentence-transformers (torch) and onnxruntime (no torch, fast to start). Their
vectors agree to within float rounding and they share a ``model_id``, hence the
embedding cache (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Callable

from kbase.embed.base import Embedder, Vectors
from kbase.errors import ConfigError


def _minilm() -> Embedder:
    from kbase.embed.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


def _minilm_onnx() -> Embedder:
    from kbase.embed.minilm_onnx import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


def _fake() -> Embedder:
    from kbase.embed.fake import HashingEmbedder

    return HashingEmbedder()


EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "minilm": _minilm,
    "minilm-onnx": _minilm_onnx,
    "fake": _fake,
}


def get_embedder(name: str) -> Embedder:
    """The embedder registered as ``name``."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDERS))
        raise ConfigError(f"unknown embedder {name!r}: choose one of {known}") from None
    return factory()


__all__ = ["EMBEDDERS", "Embedder", "Vectors", "get_embedder"]
