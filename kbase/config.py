"""Settings of a knowledge base, fixed when it is created and stored in it.

Everything here can change what the store derives from its documents, so it is
written to the ``meta`` table at creation and read back on every open: replaying
the ingest log (to forget a document) must use the settings that built it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kbase.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How a knowledge base turns documents into facts and answers questions."""

    #: ``rag`` never edits; ``erase-paper`` is ERASE's reference call pattern;
    #: ``kbase`` batches and scores verdicts (see docs/design.md).
    strategy: str = "kbase"
    #: all-MiniLM-L6-v2 on onnxruntime: the same vectors as sentence-transformers'
    #: ``minilm`` (tests/test_embedders.py) without importing torch, which costs a new
    #: process 6-11 s (docs/models.md).
    embedder: str = "minilm-onnx"
    #: LLM backend name (``llama-cpp``, ``openai``, ``vllm``) and its model.
    llm: str = "llama-cpp"
    llm_model: str | None = None
    llm_url: str | None = None
    #: Seconds an LLM server may take to answer one request (each of 3 tries).
    llm_timeout: float = 120.0
    #: Chunk size for extraction, in estimated tokens.
    chunk_tokens: int = 350
    #: Cosine above which a stored fact is a candidate for an edit by new text.
    candidate_threshold: float = 0.55
    #: At most this many candidates per chunk.
    candidate_cap: int = 6
    #: Cosine above which a new fact is the same as a stored one (it reinforces it).
    duplicate_threshold: float = 0.93
    #: ``kbase``: a fact made false is rewritten as the chunk's new fact that keeps at
    #: least this share of its words around one changed span; else one is generated.
    rewrite_swap_share: float = 0.5
    #: Minimum probability of a verdict for an edit to be applied.
    min_confidence: float = 0.55
    #: ``kbase``: minimum P(FALSE) to edit a fact that none of the chunk's new facts
    #: restates with a changed span (its rewrite must be generated).
    unmatched_min_confidence: float = 0.85
    #: ``kbase``: minimum P(FALSE) to close a fact that a sentence of the article says
    #: has ended ("X stepped down", "down from Y": :mod:`kbase.pipeline.changes`):
    #: the sentence is the evidence; the verdict only keeps the fact when the model is
    #: sure it still holds (P(TRUE) above 1 - this).
    ended_min_confidence: float = 0.15
    #: ``kbase``: at most this many facts one document closes on the verdict alone (no
    #: new fact of it says what holds instead); the most any one article may take
    #: away on the model's word (see docs/design.md, "Articles are data").
    max_verdict_closures: int = 2
    #: Facts retrieved to answer a question.
    answer_k: int = 8
    #: Cosine below which a retrieved fact is not shown to answer a question: a question
    #: with none above it is answered "unknown" without asking the model. Set well
    #: under the relevant pairs we measured (all 0.57 or more, docs/design.md).
    answer_min_score: float = 0.30
    #: Master seed (few-shot selection).
    seed: int = 0

    def __post_init__(self) -> None:
        # Names (strategy, embedder, backend) are checked against their registries
        # when a knowledge base opens: this leaf knows none of them.
        if not 0.0 <= self.candidate_threshold <= 1.0:
            raise ConfigError("candidate threshold must be between 0 and 1")
        if self.chunk_tokens < 32:
            raise ConfigError("chunk size must be at least 32 tokens")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        known = {f.name for f in fields(cls)}
        data: dict[str, Any] = {k: v for k, v in json.loads(text).items() if k in known}
        return cls(**data)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the non-None ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
