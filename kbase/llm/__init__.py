"""LLM backends by name.

Each name maps to a factory that imports its backend module only when called, so
importing :mod:`kbase.llm` (and running ``kb --help``) never loads llama_cpp, vllm or
torch. Tests register deterministic fakes through :func:`register_backend`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbase.errors import ConfigError
from kbase.llm.base import SEED, LLMBackend, LLMRequest, LLMResponse, Message

BackendFactory = Callable[..., LLMBackend]
DEFAULT_BACKEND = "llama-cpp"


def _llama_cpp(
    *, model_path: str | Path | None = None, n_ctx: int = 4096, n_threads: int | None = None
) -> LLMBackend:
    from kbase.llm.llama_cpp_backend import LlamaCppBackend

    return LlamaCppBackend(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads)


def _openai(
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    response_format: str | None = None,
) -> LLMBackend:
    from kbase.llm.openai_backend import RESPONSE_FORMAT_STYLES, OpenAIBackend

    if not base_url:
        raise ConfigError("the openai backend needs a server URL: pass --llm-url")
    settings: dict[str, Any] = {"api_key": api_key}
    if model:
        settings["model"] = model
    if timeout is not None:
        settings["timeout"] = timeout
    if retries is not None:
        settings["retries"] = retries
    if response_format is not None:
        if response_format not in RESPONSE_FORMAT_STYLES:
            styles = ", ".join(RESPONSE_FORMAT_STYLES)
            raise ConfigError(
                f"unknown response format {response_format!r}: choose one of {styles}"
            )
        settings["response_format"] = response_format
    return OpenAIBackend(base_url=base_url, **settings)


def _vllm(*, model: str | None = None, **engine_options: Any) -> LLMBackend:
    from kbase.llm.vllm_backend import VllmBackend

    if not model:
        raise ConfigError("the vllm backend needs a model (a Hugging Face folder or name)")
    return VllmBackend(model=model, **engine_options)


BACKENDS: dict[str, BackendFactory] = {
    "llama-cpp": _llama_cpp,
    "openai": _openai,
    "vllm": _vllm,
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``factory`` available as ``name`` (replacing any backend of that name)."""
    BACKENDS[name] = factory


def get_backend(name: str = DEFAULT_BACKEND, **options: Any) -> LLMBackend:
    """A new backend registered as ``name``, built with ``options``.

    ``llama-cpp`` takes ``model_path`` (default: the embedded model), ``n_ctx``,
    ``n_threads``; ``openai`` needs ``base_url`` and takes ``model``, ``api_key``,
    ``timeout``, ``retries``, ``response_format`` (``auto``, ``json_schema`` for vLLM,
    ``json_object`` for llama_cpp.server); ``vllm`` needs ``model`` and passes the rest
    to the engine.
    """
    try:
        factory = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown LLM backend {name!r}: choose one of {known}") from None
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for LLM backend {name!r}: {exc}") from None
    return factory(**options)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "SEED",
    "BackendFactory",
    "LLMBackend",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "get_backend",
    "register_backend",
]
