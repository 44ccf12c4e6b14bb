"""The embedded default: a GGUF model run in-process by llama.cpp (llama-cpp-python).

Both :meth:`LlamaCppBackend.generate` and :meth:`LlamaCppBackend.score` go through
``create_chat_completion``, so the model's own chat template renders every prompt the
same way and prompts that share a beginning share tokens. llama.cpp keeps the KV
cache of the previous prompt and evaluates only what follows the longest common
prefix, so a batch of prompts that start with the same article costs one prefill of
the article plus a short suffix each; ``cached_tokens`` reports that reuse.

Scores are read from the full next-token logits rather than from
``logprobs``/``top_logprobs``: llama-cpp-python (0.3.36) returns log-probabilities
only for a model built with ``logits_all=True``, which keeps a float per vocabulary
entry for every position of the context (2.5 GB for 4096 x 151,936) and slows
every prefill. The logits of the last prompt position are all that scoring needs,
and they give every choice an exact log-probability, listed in a top 20 or not.

Runs are deterministic for a given sequence of calls (greedy decoding, fixed seed),
but the same prompt can give logits that differ in the last digits depending on how
much of it was cached, because llama.cpp then evaluates it in batches of a different
shape. Replay that must be exact should use the recorded answer, not the model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kbase.errors import ConfigError, ModelError, missing_extra
from kbase.llm.base import SEED, LLMBackend, LLMRequest, LLMResponse
from kbase.llm.model_files import DEFAULT_MODEL, default_model_path, gguf_model_id
from kbase.llm.scoring import check_choices

DEFAULT_N_CTX = 4096


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``), which
    is what llama.cpp's threads should match: more threads than cores make its
    spin-waiting workers run several times slower."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def reused_prefix(previous: Sequence[int], prompt: Sequence[int], *, logits_live: bool) -> int:
    """How many leading tokens of ``prompt`` llama.cpp takes from its KV cache.

    This mirrors ``Llama.generate`` in llama-cpp-python 0.3.36: with ``previous`` the
    tokens whose keys and values are in the cache, it keeps the longest common prefix,
    except that a prompt wholly inside the cache still has its last token evaluated
    again to refresh the logits, unless the cache holds exactly the prompt and the
    logits in memory came from evaluating it (``logits_live``).
    """
    common = 0
    for old, new in zip(previous, prompt, strict=False):
        if old != new:
            break
        common += 1
    if common < len(prompt):
        return common
    if len(previous) == len(prompt) and logits_live:
        return common
    return max(common - 1, 0)


def _state_cache(llama_cpp: Any, capacity_bytes: int) -> Any:
    """llama-cpp-python's prefix-keyed RAM cache of model states, with a size that
    counts each state's logits array too (its own count leaves them out, and they are
    about 150 MB each for this model), so ``capacity_bytes`` really bounds memory."""

    class StateCache(llama_cpp.LlamaRAMCache):  # type: ignore[misc]
        @property
        def cache_size(self) -> int:
            return sum(
                state.llama_state_size + state.scores.nbytes for state in self.cache_state.values()
            )

    return StateCache(capacity_bytes=capacity_bytes)


def _lean_llama(llama_cpp: Any) -> Any:
    """``Llama`` whose saved states leave out the logits array (up to n_batch rows of
    the vocabulary's 151,936 floats, about 300 MB, copied on every save; without
    ``logits_all`` llama-cpp-python never even writes it). A loaded state is evaluated
    again before its logits are read (``load_state`` sets ``_requires_eval``), so the
    copy bought nothing and cost about a fifth of each warm call."""

    class LeanLlama(llama_cpp.Llama):  # type: ignore[misc]
        def save_state(self) -> Any:
            with _no_logits(self):
                return super().save_state()

        def load_state(self, state: Any) -> None:
            # The parent copies state.scores into the first n_tokens rows: none here.
            with _no_logits(self):
                super().load_state(state)

    return LeanLlama


@contextmanager
def _no_logits(llm: Any) -> Iterator[None]:
    """Show ``llm``'s state methods an empty logits array (``scores``; the states
    copy its first ``n_tokens`` rows)."""
    scores = llm.scores
    llm.scores = scores[:0]
    try:
        yield
    finally:
        llm.scores = scores


class LlamaCppBackend(LLMBackend):
    """A GGUF chat model in this process; the embedded Qwen2.5-Coder-1.5B by default."""

    supports_logprobs = True

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        model_id: str | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        state_cache_bytes: int = 1536 << 20,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise missing_extra("llama-cpp-python", "local") from exc
        if model_path is None:
            path = default_model_path()
            self.model_id = model_id or DEFAULT_MODEL.model_id
        else:
            path = Path(model_path)
            self.model_id = model_id or gguf_model_id(path)
            if not path.is_file():
                raise ConfigError(f"model file {path} does not exist: check the model path")
        self.model_path = path
        self._llama_cpp = llama_cpp
        threads = n_threads or usable_cpus()
        try:
            self._llm: Any = _lean_llama(llama_cpp)(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                seed=SEED,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
        self._states: Any = None
        if state_cache_bytes > 0:
            # llama.cpp keeps one prompt's KV cache; kbase alternates prompts of three
            # tasks whose instructions and examples are the same every time. Saved states
            # let each task resume from its own prefix instead of recomputing it.
            self._states = _state_cache(llama_cpp, state_cache_bytes)
            self._llm.set_cache(self._states)

    def generate(self, request: LLMRequest) -> LLMResponse:
        options: dict[str, Any] = {}
        if request.schema is not None:
            # llama-cpp-python compiles this schema into a grammar that constrains decoding.
            options["response_format"] = {"type": "json_object", "schema": dict(request.schema)}
        result, response = self._chat(request, max_tokens=request.max_tokens, **options)
        text = result["choices"][0]["message"]["content"] or ""
        return LLMResponse(
            text=text,
            prompt_tokens=response.prompt_tokens,
            cached_tokens=response.cached_tokens,
            completion_tokens=response.completion_tokens,
            seconds=response.seconds,
        )

    def score(self, request: LLMRequest) -> LLMResponse:
        """Log-probability of each choice's first token, from the full next-token logits.

        The chat completion below (one token, greedy) evaluates the prompt; the
        logits of its last position then hold the next-token distribution.
        """
        choices = check_choices(request.choices)
        _, response = self._chat(request, max_tokens=1)
        logprobs = self._last_logprobs()
        scores = {choice: float(logprobs[self._first_token(choice)]) for choice in choices}
        return LLMResponse(
            scores=scores,
            prompt_tokens=response.prompt_tokens,
            cached_tokens=response.cached_tokens,
            completion_tokens=response.completion_tokens,
            seconds=response.seconds,
        )

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            self._llm = None
            llm.close()

    def _chat(
        self, request: LLMRequest, *, max_tokens: int, **options: Any
    ) -> tuple[dict[str, Any], LLMResponse]:
        llm = self._require()
        cached_before = llm.input_ids[: llm.n_tokens].tolist()
        saved = [list(key) for key in self._states.cache_state] if self._states is not None else []
        logits_live = not getattr(llm, "_requires_eval", True)
        start = time.perf_counter()
        try:
            result: dict[str, Any] = llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                max_tokens=max_tokens,
                temperature=0.0,
                seed=SEED,
                **options,
            )
        except ValueError as exc:
            raise ModelError(f"llama.cpp rejected the request ({request.task}): {exc}") from exc
        seconds = time.perf_counter() - start
        usage = result["usage"]
        prompt_tokens = int(usage["prompt_tokens"])
        # The prompt is evaluated in full before the first token is sampled, so it
        # now heads the model's input ids.
        prompt = llm.input_ids[:prompt_tokens].tolist()
        cached = max(
            [reused_prefix(cached_before, prompt, logits_live=logits_live)]
            + [reused_prefix(key, prompt, logits_live=False) for key in saved]
        )
        response = LLMResponse(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            completion_tokens=int(usage["completion_tokens"]),
            seconds=seconds,
        )
        return result, response

    def _last_logprobs(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        llm = self._require()
        n_vocab = int(llm.n_vocab())
        pointer = self._llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
        top = logits.max()
        result: np.ndarray[Any, np.dtype[np.float64]] = logits - (
            top + np.log(np.exp(logits - top).sum())
        )
        return result

    def _first_token(self, choice: str) -> int:
        tokens = self._require().tokenize(choice.encode("utf-8"), add_bos=False, special=False)
        if not tokens:
            raise ValueError(f"choice {choice!r} has no tokens")
        return int(tokens[0])

    def _require(self) -> Any:
        if self._llm is None:
            raise ModelError(f"the {self.model_id} backend was closed")
        return self._llm
