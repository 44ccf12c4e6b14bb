"""vLLM's in-process engine (``vllm.LLM``): the production backend for batch work on GPU hosts.

:meth:`VllmBackend.generate_many` hands every request to one ``LLM.chat`` call, so
vLLM schedules them together and reuses the KV cache of shared prefixes (automatic
prefix caching); ``cached_tokens`` reports that reuse where the installed vLLM
exposes ``RequestOutput.num_cached_tokens``.

Structured output is requested the way the installed vLLM spells it: recent
releases take ``SamplingParams(structured_outputs=StructuredOutputsParams(json=...))``
(the older ``guided_decoding`` was removed in v0.12); releases before the rename
take ``SamplingParams(guided_decoding=GuidedDecodingParams(json=...))``. Where the
engine takes a ``structured_outputs_config``, the JSON is compact (no free whitespace).

Sampling on a GPU is not bit-reproducible across batch shapes, even greedy: replay
that must be exact has to use the recorded answer, not ask again.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kbase.errors import ModelError, missing_extra
from kbase.llm.base import SEED, LLMBackend, LLMRequest, LLMResponse
from kbase.llm.scoring import TOP_LOGPROBS, check_choices, fill_missing


def structured_output_options(sampling_module: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments that constrain output to ``schema``."""
    if hasattr(sampling_module, "StructuredOutputsParams"):
        params = sampling_module.StructuredOutputsParams(json=dict(schema))
        return {"structured_outputs": params}
    if hasattr(sampling_module, "GuidedDecodingParams"):
        return {"guided_decoding": sampling_module.GuidedDecodingParams(json=dict(schema))}
    raise ModelError(
        "the installed vllm has no structured outputs: upgrade it with "
        "`pip install -U 'kbase[vllm]'`"
    )


class VllmBackend(LLMBackend):
    """A Hugging Face model (folder or name) in vLLM's engine, in this process.

    ``model_id`` defaults to ``model`` as given, the name ``vllm serve`` would serve
    it under, so this backend and the OpenAI backend in front of ``vllm serve``
    share recorded answers. Other keyword arguments go to ``vllm.LLM``.
    """

    supports_logprobs = True

    def __init__(self, *, model: str, model_id: str | None = None, **engine_options: Any) -> None:
        try:
            import vllm
            import vllm.sampling_params
        except ImportError as exc:
            raise missing_extra("vllm", "vllm") from exc
        self.model_id = model_id or model
        self._vllm = vllm
        self._sampling = vllm.sampling_params
        options: dict[str, Any] = {"seed": SEED}
        if "structured_outputs_config" in inspect.signature(vllm.LLM.__init__).parameters:
            # Constrained JSON without free whitespace: where any is allowed, the embedded
            # 1.5B model answered "{" and then blanks up to its token budget. vLLM takes
            # this only with a named grammar backend; xgrammar is what "auto" picks for
            # kbase's schemas.
            options["structured_outputs_config"] = {
                "backend": "xgrammar",
                "disable_any_whitespace": True,
            }
        options.update(engine_options)
        try:
            self._llm: Any = vllm.LLM(model=model, **options)
        except (OSError, ValueError, RuntimeError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise ModelError(f"vllm cannot load {model}: {message}") from exc

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.generate_many([request])[0]

    def generate_many(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        """All requests in one engine call; each response gets an equal share of its time."""
        if not requests:
            return []
        params = [self._params(r, max_tokens=r.max_tokens, schema=r.schema) for r in requests]
        outputs, seconds = self._chat(requests, params)
        return [
            self._response(output, seconds / len(requests), text=output.outputs[0].text)
            for output in outputs
        ]

    def score(self, request: LLMRequest) -> LLMResponse:
        """Log-probability of each choice's first token among the top 20 next tokens.

        A choice's first token is the first id the model's tokenizer gives it; one
        not among the top 20 gets the smallest listed log-probability minus
        :data:`kbase.llm.scoring.MISSING_MARGIN`.
        """
        choices = check_choices(request.choices)
        params = self._params(request, max_tokens=1, logprobs=TOP_LOGPROBS)
        outputs, seconds = self._chat([request], [params])
        output = outputs[0]
        step = (output.outputs[0].logprobs or [{}])[0]
        listed = {int(token): float(entry.logprob) for token, entry in step.items()}
        tokenizer = self._llm.get_tokenizer()
        found: dict[str, float | None] = {}
        for choice in choices:
            ids = tokenizer.encode(choice, add_special_tokens=False)
            found[choice] = listed.get(int(ids[0])) if ids else None
        scores = fill_missing(found, list(listed.values()))
        return self._response(output, seconds, scores=scores)

    def close(self) -> None:
        self._llm = None

    def _params(
        self,
        request: LLMRequest,
        *,
        max_tokens: int,
        schema: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> Any:
        options: dict[str, Any] = {"temperature": 0.0, "seed": SEED, "max_tokens": max_tokens}
        if logprobs is not None:
            options["logprobs"] = logprobs
        if schema is not None:
            options.update(structured_output_options(self._sampling, schema))
        return self._sampling.SamplingParams(**options)

    def _chat(self, requests: Sequence[LLMRequest], params: list[Any]) -> tuple[list[Any], float]:
        if self._llm is None:
            raise ModelError(f"the {self.model_id} backend was closed")
        conversations = [
            [{"role": m.role, "content": m.content} for m in request.messages]
            for request in requests
        ]
        start = time.perf_counter()
        outputs = self._llm.chat(conversations, sampling_params=params, use_tqdm=False)
        return list(outputs), time.perf_counter() - start

    def _response(
        self,
        output: Any,
        seconds: float,
        *,
        text: str | None = None,
        scores: Mapping[str, float] | None = None,
    ) -> LLMResponse:
        completion = output.outputs[0]
        return LLMResponse(
            text=text,
            scores=scores,
            prompt_tokens=len(output.prompt_token_ids or []),
            cached_tokens=int(getattr(output, "num_cached_tokens", None) or 0),
            completion_tokens=len(completion.token_ids),
            seconds=seconds,
        )
