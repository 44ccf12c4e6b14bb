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

With a :class:`~kbase.llm.prefix_states.PrefixStates` folder, the state of each
prompt's prefix (everything before the last message: instructions and examples) is
saved there the first time it is computed and loaded by later processes, so the first
document of a process does not recompute the ~1,000-token shared prefix.

Runs are deterministic for a given sequence of calls (greedy decoding, fixed seed),
but the same prompt can give logits that differ in the last digits depending on how
much of it was cached, because llama.cpp then evaluates it in batches of a different
shape. Replay that must be exact should use the recorded answer, not the model.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kbase.errors import ConfigError, ModelError, missing_extra
from kbase.llm.base import SEED, LLMBackend, LLMRequest, LLMResponse, Message
from kbase.llm.model_files import DEFAULT_MODEL, default_model_path, gguf_model_id
from kbase.llm.prefix_states import PrefixStates, state_key
from kbase.llm.scoring import check_choices

DEFAULT_N_CTX = 4096
#: Prefixes shorter than this are recomputed: loading a file would not pay.
MIN_SAVED_PREFIX = 256


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``), which
    is what llama.cpp's threads should match: more threads than cores make its
    spin-waiting workers run several times slower."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common


def reused_prefix(previous: Sequence[int], prompt: Sequence[int], *, logits_live: bool) -> int:
    """How many leading tokens of ``prompt`` llama.cpp takes from its KV cache.

    This mirrors ``Llama.generate`` in llama-cpp-python 0.3.36: with ``previous`` the
    tokens whose keys and values are in the cache, it keeps the longest common prefix,
    except that a prompt wholly inside the cache still has its last token evaluated
    again to refresh the logits, unless the cache holds exactly the prompt and the
    logits in memory came from evaluating it (``logits_live``).
    """
    common = common_length(previous, prompt)
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


def encode_state(state: Any) -> bytes:
    """A saved llama-cpp-python state (one without logits) as bytes."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        input_ids=np.asarray(state.input_ids[: state.n_tokens], dtype=np.intc),
        llama_state=np.frombuffer(state.llama_state, dtype=np.uint8),
        seed=np.int64(state.seed),
    )
    return buffer.getvalue()


def decode_state(llama_cpp: Any, data: bytes, *, n_ctx: int, n_vocab: int) -> Any:
    """The state :func:`encode_state` wrote, for a context of ``n_ctx`` tokens
    (ValueError, KeyError or OSError if it is damaged)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as saved:
        tokens = saved["input_ids"]
        raw = saved["llama_state"].tobytes()
        seed = int(saved["seed"])
    if not 0 < len(tokens) <= n_ctx:
        raise ValueError(f"a saved state of {len(tokens)} tokens for a context of {n_ctx}")
    # load_state replaces the model's token array with this one: it must be whole.
    input_ids = np.zeros(n_ctx, dtype=np.intc)
    input_ids[: len(tokens)] = tokens
    return llama_cpp.LlamaState(
        input_ids=input_ids,
        scores=np.zeros((0, n_vocab), dtype=np.single),
        n_tokens=len(tokens),
        llama_state=raw,
        llama_state_size=len(raw),
        seed=seed,
    )


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
        prefix_states: PrefixStates | None = None,
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
        self._prefix_states = prefix_states
        #: Prefixes (all messages but the last) this process has already made ready.
        self._ready_prefixes: set[tuple[Message, ...]] = set()
        self._formatter: Any = None

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
        start = time.perf_counter()
        cached_before = llm.input_ids[: llm.n_tokens].tolist()
        logits_live = not getattr(llm, "_requires_eval", True)
        loaded = self._ready_prefix(request.messages)
        if loaded is not None:  # from disk: its tokens were reused, not computed
            cached_before, logits_live = loaded, False
        saved = [list(key) for key in self._states.cache_state] if self._states is not None else []
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

    def _ready_prefix(self, messages: Sequence[Message]) -> list[int] | None:
        """Put the model in the state of ``messages``' prefix the first time this
        process sees it: loaded from the saved states (its tokens returned), or
        computed and saved (None returned, as when there is nothing to do)."""
        prefix = tuple(messages[:-1])
        if self._prefix_states is None or not prefix or prefix in self._ready_prefixes:
            return None
        self._ready_prefixes.add(prefix)
        tokens = self._prefix_tokens(messages)
        if len(tokens) < MIN_SAVED_PREFIX:
            return None
        llm = self._require()
        key = state_key(
            model=self.model_id,
            model_bytes=self.model_path.stat().st_size,
            n_ctx=llm.n_ctx(),
            runtime=self._llama_cpp.__version__,
            tokens=tokens,
        )
        data = self._prefix_states.load(key)
        if data is not None:
            try:
                state = decode_state(
                    self._llama_cpp, data, n_ctx=int(llm.n_ctx()), n_vocab=int(llm.n_vocab())
                )
                llm.load_state(state)
                return tokens
            except (ValueError, OSError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile):
                self._prefix_states.discard(key)  # damaged or from another build
                llm.reset()
        # Evaluate the prefix alone (at least its last token, so that the state's
        # logits are the prefix's own, not a previous article's), then save it.
        common = reused_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens, logits_live=False)
        llm.n_tokens = common
        llm.eval(tokens[common:])
        self._prefix_states.save(key, encode_state(llm.save_state()))
        return None

    def _prefix_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The tokens every prompt ending in other last-message text shares with this
        one: the common start of the chat template's rendering of ``messages`` and of
        the same messages with the last one emptied."""
        last = messages[-1]
        full = self._render([*messages])
        other = self._render([*messages[:-1], Message(last.role, "")])
        return full[: common_length(full, other)]

    def _render(self, messages: Sequence[Message]) -> list[int]:
        """``messages`` as the chat handler tokenizes them (the GGUF's own template)."""
        llm = self._require()
        if self._formatter is None:
            template = llm.metadata.get("tokenizer.chat_template")
            if llm.chat_format != "chat_template.default" or not template:
                return []  # another chat format: its prefix is not known here

            def text(token: int) -> str:
                return "" if token == -1 else llm.detokenize([token], special=True).decode()

            self._formatter = self._llama_cpp.llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos())
            )
        rendered = self._formatter(
            messages=[{"role": m.role, "content": m.content} for m in messages]
        )
        tokens: list[int] = llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=False, special=True
        )
        return tokens

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
