"""Helpers for the fault-injection tests: run a ``kb`` command in a child process,
kill it with SIGKILL at a chosen moment, and check what it left behind.

The child is this module run as ``python -m tests.crashkit ARGS...``: it replaces
the ``fake`` LLM backend (the fake world) with one whose every call sleeps a few
milliseconds (the spread is read from ``$KBASE_CRASH_DELAY_MS``, e.g. ``1-5``),
counts the steps of its database work (every flush and every commit of a
SQLAlchemy session, numbered from 1), says ``ready`` on stderr once the CLI is
imported, then runs the real entry point ``cli.main()``, and at its end says how
many steps it took.

A parent kills the child either a time after ``ready`` (:func:`run_and_kill`: a
random moment, for the kill points drawn at random), or at a point of progress
(:func:`run_and_kill_at`, deterministic): ``$KBASE_CRASH_AT`` names the point, the
child stops there (says ``paused`` on stderr and waits on its stdin) and the parent,
seeing that, sends SIGKILL. Points are ``storing DOC_ID`` (inside the transaction
that stores that document, at its commit, before the database has it) and
``step K`` (right after the K-th step). The counting hooks are SQLAlchemy session
events, so they depend on no function of kbase, only on its ``Document`` model.
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
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse

ROOT = Path(__file__).resolve().parent.parent
DELAY_ENV = "KBASE_CRASH_DELAY_MS"
AT_ENV = "KBASE_CRASH_AT"
READY = "crashkit: ready"
PAUSED = "crashkit: paused at"
STEPS = "crashkit: steps"


# -- kill points -------------------------------------------------------------------------
def storing(doc_id: str) -> str:
    """The kill point inside the transaction that stores ``doc_id``, at its commit:
    every document before it is stored, it is not."""
    return f"storing {doc_id}"


def step(k: int) -> str:
    """The kill point right after the child's ``k``-th flush or commit (from 1)."""
    return f"step {k}"


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


class Progress:
    """The child's database work, counted from SQLAlchemy's session events; stops the
    process at the kill point ``at`` (``storing DOC_ID``, ``step K``, or None)."""

    def __init__(self, at: str | None) -> None:
        kind, _, arg = (at or "").partition(" ")
        if at is not None and (kind not in ("storing", "step") or not arg):
            raise ValueError(f"${AT_ENV}={at!r}: use 'storing DOC_ID' or 'step K'")
        self.storing = arg if kind == "storing" else None
        self.step = int(arg) if kind == "step" else None
        self.steps = 0

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "before_commit", self._before_commit)
        event.listen(Session, "after_commit", self._after_commit)
        event.listen(Session, "after_rollback", self._after_rollback)

    def _stop(self, where: str) -> None:
        print(f"{PAUSED} {where}", file=sys.stderr, flush=True)
        sys.stdin.read()  # until the parent's SIGKILL (or its end)
        os._exit(70)

    def _counted(self) -> None:
        self.steps += 1
        if self.steps == self.step:
            self._stop(step(self.steps))

    def _after_flush(self, session: Any, _context: Any) -> None:
        from kbase.store.models import Document

        added = [o.doc_id for o in session.new if isinstance(o, Document)]
        session.info.setdefault("crashkit_documents", []).extend(added)
        self._counted()

    def _before_commit(self, session: Any) -> None:
        if self.storing is not None and self.storing in session.info.get("crashkit_documents", ()):
            self._stop(storing(self.storing))

    def _after_commit(self, session: Any) -> None:
        session.info.pop("crashkit_documents", None)
        self._counted()

    def _after_rollback(self, session: Any) -> None:
        session.info.pop("crashkit_documents", None)


def child_main(argv: Sequence[str]) -> None:
    """Run ``kb ARGV`` on the (slowed) fake-world backend, stopping at ``$KBASE_CRASH_AT``."""
    from kbase.llm import register_backend
    from kbase.llm.fake import world_llm

    low, high = _delay_range()
    if high > 0:
        register_backend(
            "fake", lambda **_: SlowLLM(world_llm(), low, high), options=lambda _settings: {}
        )
    progress = Progress(os.environ.get(AT_ENV) or None)
    progress.install()
    import cli

    sys.argv = ["kb", *argv]
    print(READY, file=sys.stderr, flush=True)
    try:
        cli.main()
    finally:
        print(f"{STEPS} {progress.steps}", file=sys.stderr, flush=True)


# -- the parent --------------------------------------------------------------------------
@dataclass
class Finished:
    """A command that ran to its end."""

    code: int
    out: str
    err: str
    seconds: float  # from ``ready`` to exit
    steps: int = 0  # flushes and commits, as the child counted them (0: not counted)


def _child_env(delay_ms: str, at: str | None) -> dict[str, str]:
    drop = ("KBASE_DEBUG", "KBASE_HOME", AT_ENV)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env[DELAY_ENV] = delay_ms
    if at is not None:
        env[AT_ENV] = at
    return env


def _start(
    args: Sequence[str], delay_ms: str, *, at: str | None = None, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crashkit", *args],
        cwd=ROOT,
        env=_child_env(delay_ms, at),
        stdin=subprocess.PIPE,  # a paused child waits on it
        stdout=stdout,
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
    seconds = time.perf_counter() - started
    lines = err.splitlines(keepends=True)
    steps = 0
    if lines and lines[-1].startswith(STEPS):
        steps = int(lines.pop().split()[-1])
    return Finished(process.returncode, out, "".join(lines), seconds, steps)


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


def run_and_kill_at(
    args: Sequence[str], at: str, *, delay_ms: str = "1-5", timeout: float = 120
) -> bool:
    """Run ``kb ARGS`` in a child and SIGKILL it when it stops at the kill point ``at``
    (see :func:`storing`, :func:`step`); returns whether it got there (False: the
    command ended without reaching it)."""
    process = _start(args, delay_ms, at=at, stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    timed_out = threading.Event()

    def give_up() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, give_up)
    timer.start()
    reached = False
    try:
        for line in process.stderr:
            if line.startswith(PAUSED):
                os.kill(process.pid, signal.SIGKILL)
                reached = True
                break
        process.communicate(timeout=60)
    finally:
        timer.cancel()
    if timed_out.is_set() and not reached:
        raise TimeoutError(f"the child did not reach {at!r} within {timeout} s: {args}")
    return reached and process.returncode == -signal.SIGKILL


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
def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


if __name__ == "__main__":
    child_main(sys.argv[1:])
