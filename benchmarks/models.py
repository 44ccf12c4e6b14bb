"""The models a benchmark runs on, loaded once before anything is timed.

``fake`` is the deterministic pair the tests use (hashing embedder, fake-world
LLM): fast, and meaningful only for plumbing. ``real`` is the product default:
MiniLM and the embedded Qwen2.5-Coder-1.5B in llama.cpp (set ``KBASE_CACHE`` to a
folder that holds the assembled model file to skip assembling it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kbase.config import Settings
from kbase.embed.base import Embedder, Vectors
from kbase.kb import KnowledgeBase
from kbase.llm.base import LLMBackend


class TimedEmbedder(Embedder):
    """Wraps an embedder and adds up the seconds spent in it.

    It keeps the wrapped model's id, so cached embeddings are shared with it.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.seconds = 0.0

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return self.inner.embed_batch(texts)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class Models:
    """An embedder and an LLM, shared by every knowledge base a benchmark opens."""

    fake: bool
    embedder: TimedEmbedder
    backend: LLMBackend | None
    embedder_name: str
    llm_name: str
    load_seconds: float
    #: Loads the LLM again: a fresh process's model, with nothing in its prompt cache.
    load_llm: Callable[[], LLMBackend] | None = field(default=None, repr=False)

    def open(self, folder: Path, strategy: str = "kbase") -> KnowledgeBase:
        """A fresh knowledge base in ``folder`` on these models."""
        backend = self.backend

        def make() -> LLMBackend:
            if backend is None:
                raise RuntimeError("these models were loaded without an LLM")
            return backend

        settings = Settings(strategy=strategy, embedder="fake" if self.fake else "minilm")
        return KnowledgeBase.open(folder, settings=settings, embedder=self.embedder, backend=make)

    def restart_llm(self) -> None:
        """Replace the LLM by a freshly loaded one, so that what an earlier run left
        in its prompt cache cannot make the next run look cheaper."""
        if self.load_llm is not None:
            self.close()
            self.backend = self.load_llm()

    def close(self) -> None:
        """Release the LLM."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def load_models(*, fake: bool, llm: bool = True) -> Models:
    """Load (and warm) the embedder and, with ``llm``, the LLM."""
    started = time.perf_counter()
    load_llm: Callable[[], LLMBackend]
    if fake:
        from kbase.embed.fake import HashingEmbedder
        from kbase.llm.fake import world_llm

        inner: Embedder = HashingEmbedder()
        load_llm = world_llm
        embedder_name = "fake hashing embedder"
    else:
        from kbase.embed import get_embedder
        from kbase.llm import get_backend

        default = Settings().embedder  # what kb init gives a new store
        inner = get_embedder(default)
        inner.embed(["warm up"])

        def load_llm() -> LLMBackend:
            return get_backend("llama-cpp")

        embedder_name = f"{inner.model_id} ({default})"
    backend = load_llm() if llm else None
    llm_name = "fake-world LLM" if fake else getattr(backend, "model_id", "none")
    return Models(
        fake=fake,
        embedder=TimedEmbedder(inner),
        backend=backend,
        embedder_name=embedder_name,
        llm_name=llm_name,
        load_seconds=round(time.perf_counter() - started, 2),
        load_llm=load_llm if llm else None,
    )
