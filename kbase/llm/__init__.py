"""LLM backends by name: the one registry of them.

Each name maps to a factory that imports its backend module only when called, so
importing :mod:`kbase.llm` (and running ``kb --help``) never loads llama_cpp, vllm or
torch; to the factory's options from a knowledge base's settings; and to the rule
that names the model without loading it (:func:`model_id_for`: part of every
recorded request's key). Tests register their own through :func:`register_backend`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbase.config import Settings
from kbase.errors import ConfigError
from kbase.llm.base import SEED, LLMBackend, LLMRequest, LLMResponse, Message
from kbase.llm.model_files import DEFAULT_MODEL, gguf_model_id
from kbase.llm.prefix_states import PrefixStates

BackendFactory = Callable[..., LLMBackend]
DEFAULT_BACKEND = "llama-cpp"


def _model_option(settings: Settings) -> dict[str, Any]:
    return {"model": settings.llm_model} if settings.llm_model else {}


def _named_model(settings: Settings) -> str:
    return settings.llm_model or settings.llm


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: how to make it, from what settings, and its model's name."""

    factory: BackendFactory
    #: The factory's options for a knowledge base's settings.
    options: Callable[[Settings], dict[str, Any]] = _model_option
    #: The model's identity, known without loading it.
    model_id: Callable[[Settings], str] = _named_model


def _llama_cpp(
    *,
    model_path: str | Path | None = None,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    prefix_states: PrefixStates | None = None,
) -> LLMBackend:
    from kbase.llm.llama_cpp_backend import LlamaCppBackend

    return LlamaCppBackend(
        model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, prefix_states=prefix_states
    )


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


def _fake() -> LLMBackend:
    from kbase.llm.fake import world_llm

    return world_llm()


def _llama_cpp_options(settings: Settings) -> dict[str, Any]:
    return {"model_path": settings.llm_model} if settings.llm_model else {}


def _llama_cpp_model_id(settings: Settings) -> str:
    return gguf_model_id(settings.llm_model) if settings.llm_model else DEFAULT_MODEL.model_id


def _openai_options(settings: Settings) -> dict[str, Any]:
    if not settings.llm_url:
        raise ConfigError("the openai backend needs a server URL: pass --llm-url URL")
    return {
        "base_url": settings.llm_url,
        "model": settings.llm_model,
        "timeout": settings.llm_timeout,
    }


def _served_model(settings: Settings) -> str:
    if not settings.llm_model:
        raise ConfigError(f"the {settings.llm} backend needs a model name: pass --model NAME")
    return settings.llm_model


BACKENDS: dict[str, BackendEntry] = {
    "llama-cpp": BackendEntry(_llama_cpp, _llama_cpp_options, _llama_cpp_model_id),
    "openai": BackendEntry(_openai, _openai_options, _served_model),
    "vllm": BackendEntry(_vllm, model_id=_served_model),
    # The deterministic fake world (kbase.llm.fake): tests and fake-model benchmarks.
    "fake": BackendEntry(_fake, options=lambda _settings: {}),
}


def register_backend(
    name: str,
    factory: BackendFactory,
    *,
    options: Callable[[Settings], dict[str, Any]] | None = None,
    model_id: Callable[[Settings], str] | None = None,
) -> None:
    """Make ``factory`` available as ``name`` (replacing any backend of that name);
    ``options`` maps settings to its options (default: ``model`` when one is set),
    ``model_id`` names its model (default: the model setting, else ``name``)."""
    BACKENDS[name] = BackendEntry(factory, options or _model_option, model_id or _named_model)


def _entry(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown LLM backend {name!r}: choose one of {known}") from None


def model_id_for(settings: Settings) -> str:
    """The identity of the configured LLM, known without loading it."""
    return _entry(settings.llm).model_id(settings)


def backend_for(settings: Settings, *, prefix_states: PrefixStates | None = None) -> LLMBackend:
    """A new backend as a knowledge base's settings configure it, keeping its saved
    prefix states in ``prefix_states`` if its factory takes them."""
    entry = _entry(settings.llm)
    options = entry.options(settings)
    if prefix_states is not None and "prefix_states" in inspect.signature(entry.factory).parameters:
        options["prefix_states"] = prefix_states
    return get_backend(settings.llm, **options)


def get_backend(name: str = DEFAULT_BACKEND, **options: Any) -> LLMBackend:
    """A new backend registered as ``name``, built with ``options``.

    ``llama-cpp`` takes ``model_path`` (default: the embedded model), ``n_ctx``,
    ``n_threads``, ``prefix_states``; ``openai`` needs ``base_url`` and takes ``model``,
    ``api_key``, ``timeout``, ``retries``, ``response_format`` (``auto``, ``json_schema`` for vLLM,
    ``json_object`` for llama_cpp.server); ``vllm`` needs ``model`` and passes the rest
    to the engine; ``fake`` takes none.
    """
    factory = _entry(name).factory
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for LLM backend {name!r}: {exc}") from None
    return factory(**options)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "SEED",
    "BackendEntry",
    "BackendFactory",
    "LLMBackend",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "backend_for",
    "get_backend",
    "model_id_for",
    "register_backend",
]
