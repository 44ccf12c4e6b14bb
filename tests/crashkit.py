"""Helpers for the fault-injection tests: run a ``kb`` command in a child process,
kill it with SIGKILL at a chosen moment, and check what it left behind.

The child is this module run as ``python -m tests.crashkit ARGS...``: it imports
``tests.conftest`` (which registers the fake-world LLM as ``fake-world``), wraps
that backend so every model call sleeps a few milliseconds (the spread is read
from ``$KBASE_CRASH_DELAY_MS``, e.g. ``1-5``), says ``ready`` on stderr once the
CLI is imported, then runs the real entry point ``cli.main()``. A parent that
waits for ``ready`` before starting its clock kills the command itself, never
the interpreter's start-up.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse

ROOT = Path(__file__).resolve().parent.parent
DELAY_ENV = "KBASE_CRASH_DELAY_MS"
READY = "crashkit: ready"

_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay")
_ROLES = ("CEO", "CFO", "city", "founder")
_NAMES = ("Bob", "Alice", "Carol", "Dana", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy")


# -- the child ---------------------------------------------------------------------------
class SlowLLM(LLMBackend):
    """Another backend, slowed by a random pause of ``low``-``high`` ms per call, so that
    a kill at a random moment lands inside a document's work, not between processes."""

    def __init__(self, inner: LLMBackend, low_ms: float, high_ms: float) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.supports_logprobs = inner.supports_logprobs
        self.low, self.high = low_ms / 1000, high_ms / 1000

    def _pause(self) -> None:
        time.sleep(random.uniform(self.low, self.high))

    def generate(self, request: LLMRequest) -> LLMResponse:
        self._pause()
        return self.inner.generate(request)

    def score(self, request: LLMRequest) -> LLMResponse:
        self._pause()
        return self.inner.score(request)


def _delay_range() -> tuple[float, float]:
    raw = os.environ.get(DELAY_ENV, "0")
    low, _, high = raw.partition("-")
    return float(low), float(high or low)


def child_main(argv: Sequence[str]) -> None:
    """Run ``kb ARGV`` on the (slowed) fake-world backend."""
    import tests.conftest  # noqa: F401  (registers the fake-world backend)
    from kbase.llm import register_backend
    from tests.fakeworld import world_llm

    low, high = _delay_range()
    if high > 0:
        register_backend("fake-world", lambda **_: SlowLLM(world_llm(), low, high))
    import cli

    sys.argv = ["kb", *argv]
    print(READY, file=sys.stderr, flush=True)
    cli.main()


# -- the parent --------------------------------------------------------------------------
@dataclass
class Finished:
    """A command that ran to its end."""

    code: int
    out: str
    err: str
    seconds: float  # from ``ready`` to exit


def _child_env(delay_ms: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KBASE_DEBUG", "KBASE_HOME")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env[DELAY_ENV] = delay_ms
    return env


def _start(args: Sequence[str], delay_ms: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crashkit", *args],
        cwd=ROOT,
        env=_child_env(delay_ms),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline().strip()
    if line != READY:
        _, err = process.communicate()
        raise RuntimeError(f"the child did not start: {line}\n{err}")
    return process


def run_child(args: Sequence[str], *, delay_ms: str = "1-5", timeout: float = 120) -> Finished:
    """Run ``kb ARGS`` in a child to its end."""
    process = _start(args, delay_ms)
    started = time.perf_counter()
    out, err = process.communicate(timeout=timeout)
    return Finished(process.returncode, out, err, time.perf_counter() - started)


def run_and_kill(args: Sequence[str], after: float, *, delay_ms: str = "1-5") -> bool:
    """Run ``kb ARGS`` in a child and SIGKILL it ``after`` seconds into the command;
    returns whether it was still running when the signal was sent."""
    process = _start(args, delay_ms)
    time.sleep(after)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    return alive and process.returncode == -signal.SIGKILL


def run_cli(args: Sequence[str]) -> Finished:
    """Run ``kb ARGS`` in this process through the real entry point ``cli.main()``."""
    import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["kb", *args]
    started = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return Finished(code, out.getvalue(), err.getvalue(), time.perf_counter() - started)


# -- inputs ------------------------------------------------------------------------------
def news_batch(n: int, *, prefix: str = "d", seed: int = 7) -> list[dict[str, Any]]:
    """``n`` dated JSONL records in the fake world's "S is O." form; later ones
    contradict earlier ones often, so ingest edits facts and forget replays."""
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    records = []
    for i in range(n):
        sentences = []
        for _ in range(3):
            role, company = rng.choice(_ROLES), rng.choice(_COMPANIES)
            sentences.append(f"The {role} of {company} is {rng.choice(_NAMES)}.")
        records.append(
            {
                "id": f"{prefix}{i:02d}",
                "title": f"News {i}",
                "url": f"https://news.example.org/{prefix}{i:02d}",
                "published": (start + timedelta(days=i)).isoformat(),
                "text": " ".join(sentences) + "\n\n" + f"Item {i} of the batch is news.",
            }
        )
    return records


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


if __name__ == "__main__":
    child_main(sys.argv[1:])
