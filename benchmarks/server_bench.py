"""The server against the CLI (issue 17): what keeping the models loaded buys, how
reads hold up while a writer ingests, and how fast other hosts see a commit.

One run measures, on the same data in the same run:

1. *warm against cold* (fake models): ``GET /search`` and ``POST /ask`` on a
   running ``kb serve`` (p50, p95 of ``--requests`` each, after a warm-up),
   against ``kb search`` and ``kb ask`` run as new processes (``--cold-runs``
   each: interpreter, imports, store and index opened, the query answered);
2. *warm against cold on the real models*, once (unless ``--no-real``): the
   default embedder and the embedded LLM, a store of two Acme articles ingested
   through the server; ``--real-requests`` warm ``/ask`` and ``/search`` against
   ``--real-cold-runs`` new ``kb ask`` and ``kb search`` processes;
3. *readers while a writer ingests* (fake models, SQLite): ``--readers`` threads
   looping ``/search`` for ``--seconds``, alone and then while a writer posts one
   document per request; requests per second, p50/p95, errors (any answer but 200);
4. *three hosts* (fake models, PostgreSQL at ``--pg``): three ``kb serve``
   processes, each with its own folder, on one database; ``--commits`` times, a
   document is posted to one host (in turn) and the other two are polled every
   10 ms until their ``/search`` finds it; the delay from the write's answer to
   each host's first sight of it, and whether every host's index then holds as
   many vectors as the database holds fact versions.

    nice -n 10 python -m benchmarks.server_bench            # everything (minutes)
    python -m benchmarks.server_bench --no-real --seconds 5 --requests 50 --no-docs

The result goes into docs/benchmarks.md (its ``server`` section) and
benchmarks/results/server.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import (
    command_line,
    describe,
    load_average,
    machine,
    table,
    update_section,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULT = ROOT / "benchmarks" / "results" / "server.json"
PG = "postgresql://127.0.0.1:5432/test"
QUERIES = (
    "Who is the CEO of Acme?",
    "Where is Globex based?",
    "Who founded Initech?",
    "Who is the CFO of Umbrella?",
)
ACME = [
    {
        "id": "acme-bob",
        "title": "Acme Robotics names Bob Marsh chief executive",
        "published": "2024-01-08",
        "url": "https://news.example.org/acme-bob",
        "text": "Acme Robotics, the warehouse-robot maker based in Leeds, named Bob Marsh as "
        "its chief executive on Monday. Bob Marsh previously ran the company's European "
        "sales team.",
    },
    {
        "id": "acme-alice",
        "title": "Acme Robotics replaces Bob Marsh with Alice Chen",
        "published": "2024-05-02",
        "url": "https://news.example.org/acme-alice",
        "text": "Acme Robotics named Alice Chen its chief executive on Thursday, replacing "
        "Bob Marsh, who left the company. Alice Chen was previously the chief operating "
        "officer of Acme Robotics.",
    },
]
ACME_QUESTION = "Who is the chief executive of Acme Robotics?"
#: Each asked once: a question asked again is answered from the record of model
#: answers, without the model, which would measure the record, not the answer.
ACME_QUESTIONS = (
    "Who runs Acme Robotics?",
    "Who leads Acme Robotics today?",
    "Who is in charge of Acme Robotics?",
    "Who is the CEO of Acme Robotics?",
    "Which person heads Acme Robotics?",
    "Who took over as chief executive of Acme Robotics?",
    "Who is the boss of Acme Robotics?",
    "Who manages Acme Robotics as its chief executive?",
)


def fresh_questions(count: int, start: int = 0) -> list[str]:
    """``count`` questions of the fake world none of which was asked before."""
    return [f"{QUERIES[i % len(QUERIES)]} (question {i})" for i in range(start, start + count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def kb_command(folder: Path, *args: str, db: str | None = None, fake: bool = True) -> list[str]:
    """``kb --kb FOLDER [--db URL] [--llm fake] ARGS`` as a new Python process."""
    command = [sys.executable, "-c", "from cli import main; main()", "--kb", str(folder)]
    if db:
        command += ["--db", db]
    if fake:
        command += ["--llm", "fake"]
    return command + list(args)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("KBASE_TOKEN", "KBASE_HOME")}


@contextmanager
def serving(folder: Path, *, db: str | None = None, fake: bool = True) -> Iterator[httpx.Client]:
    """A ``kb serve`` process on a free port, its models loaded; a client for it."""
    port = free_port()
    process = subprocess.Popen(
        kb_command(folder, "serve", "--port", str(port), db=db, fake=fake),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=1800)
    try:
        deadline = time.monotonic() + 1800
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"kb serve failed: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if client.get("/health").json()["ready"]:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("kb serve did not start")
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def create(folder: Path, *, db: str | None = None, fake: bool = True) -> None:
    from kbase.config import Settings
    from kbase.kb import KnowledgeBase

    settings = Settings(embedder="fake", llm="fake") if fake else Settings()
    KnowledgeBase.open(folder, database_url=db, settings=settings).close()


def quantiles(times: Sequence[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds (p95 by the nearest rank)."""
    ordered = sorted(times)
    rank = max(0, min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1))
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[rank], 2),
    }


def timed_requests(
    client: httpx.Client, verb: str, count: int, questions: Sequence[str] = QUERIES
) -> list[float]:
    """Seconds of each of ``count`` requests (``ask`` or ``search``), one at a time."""
    times = []
    for i in range(count):
        query = questions[i % len(questions)]
        started = time.perf_counter()
        if verb == "ask":
            response = client.post("/ask", json={"question": query})
        else:
            response = client.get("/search", params={"q": query})
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    return times


def cold_runs(folder: Path, verb: str, questions: Sequence[str], *, fake: bool) -> list[float]:
    """Wall seconds of ``kb VERB QUESTION`` as a new process, for each question."""
    times = []
    for question in questions:
        started = time.perf_counter()
        subprocess.run(
            kb_command(folder, verb, question, fake=fake),
            cwd=ROOT,
            env=_env(),
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return times


def _comparison(name: str, warm: list[float], cold: list[float]) -> dict[str, Any]:
    warm_q, cold_q = quantiles(warm), quantiles(cold)
    return {
        "what": name,
        "warm": warm_q,
        "cold": cold_q,
        "cold_over_warm_p50": round(cold_q["p50_ms"] / warm_q["p50_ms"], 1),
    }


# -- 1 and 2: warm against cold ----------------------------------------------------------
def warm_and_cold_fake(
    work: Path, documents: int, requests: int, cold: int
) -> list[dict[str, Any]]:
    from kbase.llm.fake import world_news

    folder = work / "fake"
    create(folder)
    with serving(folder) as client:
        client.post("/documents", json=world_news(documents, prefix="s-")).raise_for_status()
        timed_requests(client, "search", 10)  # warm-up
        timed_requests(client, "ask", 10, fresh_questions(10))
        search = timed_requests(client, "search", requests)
        ask = timed_requests(client, "ask", requests, fresh_questions(requests, 10))
    cold_search = cold_runs(folder, "search", QUERIES[:1] * cold, fake=True)
    cold_ask = cold_runs(folder, "ask", fresh_questions(cold, 10 + requests), fake=True)
    return [
        _comparison("search, fake models", search, cold_search),
        _comparison("ask, fake models", ask, cold_ask),
    ]


def warm_and_cold_real(work: Path, requests: int, cold: int) -> list[dict[str, Any]]:
    folder = work / "real"
    create(folder, fake=False)
    with serving(folder, fake=False) as client:
        client.post("/documents", json=ACME).raise_for_status()
        if requests + cold > len(ACME_QUESTIONS):
            raise SystemExit(f"at most {len(ACME_QUESTIONS)} real questions in all")
        answer = client.post("/ask", json={"question": ACME_QUESTION}).json()["answer"]  # warm-up
        ask = timed_requests(client, "ask", requests, ACME_QUESTIONS[:requests])
        search = timed_requests(client, "search", 10 * requests, [ACME_QUESTION])
    cold_ask = cold_runs(folder, "ask", ACME_QUESTIONS[requests : requests + cold], fake=False)
    cold_search = cold_runs(folder, "search", [ACME_QUESTION] * cold, fake=False)
    results = [
        _comparison("ask, real models", ask, cold_ask),
        _comparison("search, real models", search, cold_search),
    ]
    results[0]["answer"] = answer
    return results


# -- 3: readers while a writer ingests ---------------------------------------------------
def _read_loop(client: httpx.Client, stop: threading.Event, out: dict[str, Any]) -> None:
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = client.get("/search", params={"q": QUERIES[i % len(QUERIES)]})
            if response.status_code != 200:
                out["errors"].append(f"HTTP {response.status_code}: {response.text[:120]}")
        except httpx.HTTPError as exc:
            out["errors"].append(f"{type(exc).__name__}: {exc}")
        out["times"].append(time.perf_counter() - started)
        i += 1


def readers_and_writer(
    work: Path, documents: int, readers: int, seconds: float
) -> list[dict[str, Any]]:
    from kbase.llm.fake import world_news

    folder = work / "load"
    create(folder)
    phases = []
    with serving(folder) as client:
        client.post("/documents", json=world_news(documents, prefix="l-")).raise_for_status()
        later = world_news(documents + 10_000, prefix="l-")[documents:]
        for with_writer in (False, True):
            stop = threading.Event()
            outs: list[dict[str, Any]] = [{"times": [], "errors": []} for _ in range(readers)]
            clients = [httpx.Client(base_url=client.base_url, timeout=60) for _ in range(readers)]
            threads = [
                threading.Thread(target=_read_loop, args=(c, stop, o))
                for c, o in zip(clients, outs, strict=True)
            ]
            written, write_errors, write_times = 0, list[str](), list[float]()
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            while time.perf_counter() - started < seconds:
                if not with_writer:
                    time.sleep(0.05)
                    continue
                begun = time.perf_counter()
                response = client.post("/documents", json=[later[written]])
                write_times.append(time.perf_counter() - begun)
                if response.status_code != 200:
                    write_errors.append(f"HTTP {response.status_code}: {response.text[:120]}")
                written += 1
            stop.set()
            elapsed = time.perf_counter() - started
            for thread in threads:
                thread.join()
            for c in clients:
                c.close()
            times = [t for o in outs for t in o["times"]]
            errors = [e for o in outs for e in o["errors"]]
            phases.append(
                {
                    "phase": f"{readers} readers" + (" + 1 writer" if with_writer else ""),
                    "requests": len(times),
                    "requests_per_s": round(len(times) / elapsed, 1),
                    **quantiles(times),
                    "documents_written": written,
                    "writer_docs_per_s": round(written / elapsed, 2),
                    "writer_p95_ms": quantiles(write_times)["p95_ms"] if write_times else None,
                    "errors": len(errors) + len(write_errors),
                    "first_errors": (errors + write_errors)[:3],
                }
            )
    return phases


# -- 4: three hosts ------------------------------------------------------------------------
def _schema(pg: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine, text

    admin = create_engine(
        pg.replace("postgresql:", "postgresql+psycopg:"), isolation_level="AUTOCOMMIT"
    )
    name = f"kbbench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {name}"))
    return f"{pg}?options=-csearch_path%3D{name}", (admin, name)


def _drop(handle: Any) -> None:
    from sqlalchemy import text

    admin, name = handle
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    admin.dispose()


def three_hosts(work: Path, pg: str, commits: int) -> dict[str, Any]:
    from kbase.kb import KnowledgeBase
    from kbase.llm.fake import world_news

    url, handle = _schema(pg)
    try:
        create(work / "host-0", db=url)
        with (
            serving(work / "host-0", db=url) as a,
            serving(work / "host-1", db=url) as b,
            serving(work / "host-2", db=url) as c,
        ):
            hosts = [a, b, c]
            a.post("/documents", json=world_news(20, prefix="h-")).raise_for_status()
            delays: list[float] = []
            unseen = first_read = 0
            records = world_news(20 + commits, prefix="h-")[20:]
            for i, record in enumerate(records):
                token = f"Zorblax{i:03d}"
                record = {**record, "text": f"The CEO of {token} is Bob."}
                writer = hosts[i % 3]
                writer.post("/documents", json=[record]).raise_for_status()
                committed = time.perf_counter()
                for reader in hosts:
                    if reader is writer:
                        continue
                    polls = 0
                    while True:
                        # The fact's own text: found first by any embedder, the fake one too.
                        hits = reader.get("/search", params={"q": record["text"], "k": 3})
                        polls += 1
                        if any(token in f["text"] for f in hits.json()["facts"]):
                            delays.append(time.perf_counter() - committed)
                            first_read += polls == 1
                            break
                        if time.perf_counter() - committed > 10:
                            unseen += 1
                            break
                        time.sleep(0.01)
            sizes = [h.get("/stats").json()["index_vectors"] for h in hosts]
        with KnowledgeBase.open(work / "check", database_url=url) as check:
            in_database = check.stats().index_vectors
    finally:
        _drop(handle)
    return {
        "hosts": 3,
        "commits": commits,
        "sightings": len(delays),
        "seen_at_first_read": first_read,
        "unseen_after_10s": unseen,
        "delay_p50_ms": round(1000 * statistics.median(delays), 1) if delays else None,
        "delay_max_ms": round(1000 * max(delays), 1) if delays else None,
        "within_1s": sum(1 for d in delays if d <= 1.0),
        "index_vectors": sizes,
        "fact_versions_in_database": in_database,
    }


# -- the report ------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    info = {**result["machine"], "load_average_1m_at_end": result.get("load_average_end")}
    lines = [
        f"Measured on {describe(info)}; by `{result['command']}`.",
        "",
        "Warm requests to one `kb serve` process against the same request as a new `kb` "
        "process (interpreter, imports, store opened, models loaded, the query answered), "
        "on the same store in the same run; every question is asked once (one asked again "
        "would be answered from the record of model answers). The fake models (plumbing "
        "only: no model time) "
        f"on {result['documents']} documents; the real models (the default embedder and "
        "the embedded LLM) on the two Acme articles.",
        "",
        table(
            [
                "request",
                "warm n",
                "warm p50 ms",
                "warm p95 ms",
                "cold n",
                "cold p50 ms",
                "cold p95 ms",
                "cold / warm (p50)",
            ],
            [
                [
                    r["what"],
                    r["warm"]["n"],
                    r["warm"]["p50_ms"],
                    r["warm"]["p95_ms"],
                    r["cold"]["n"],
                    r["cold"]["p50_ms"],
                    r["cold"]["p95_ms"],
                    f"{r['cold_over_warm_p50']}x",
                ]
                for r in result["warm_and_cold"]
            ],
        ),
    ]
    real = [r for r in result["warm_and_cold"] if "answer" in r]
    if real:
        lines += ["", f'The real model\'s warm answer: "{" ".join(real[0]["answer"].split())}"']
    lines += [
        "",
        f"Readers while a writer ingests (fake models, SQLite, {result['documents']} documents "
        f"stored first, {result['seconds']} s per phase): each reader is a thread looping "
        "`GET /search` on its own connection; the writer posts one document per request.",
        "",
        table(
            [
                "phase",
                "requests",
                "requests/s",
                "p50 ms",
                "p95 ms",
                "docs written",
                "writer docs/s",
                "writer p95 ms",
                "errors",
            ],
            [
                [
                    p["phase"],
                    p["requests"],
                    p["requests_per_s"],
                    p["p50_ms"],
                    p["p95_ms"],
                    p["documents_written"],
                    p["writer_docs_per_s"],
                    p["writer_p95_ms"] or "-",
                    p["errors"],
                ]
                for p in result["load"]
            ],
        ),
    ]
    hosts = result.get("hosts")
    if hosts:
        lines += [
            "",
            "Three hosts on one PostgreSQL database (fake models), each `kb serve` with its "
            f"own folder: {hosts['commits']} documents posted to the hosts in turn; after "
            "each write's answer, the two other hosts polled every 10 ms until a `/search` "
            "for the new fact's text found it. The delay runs from the write's answer to "
            "the end of the first search that found it (so it includes that search); "
            '"at the first read" '
            "counts the sightings where the first search after the commit found it.",
            "",
            table(
                [
                    "sightings",
                    "at the first read",
                    "within 1 s",
                    "p50 ms",
                    "max ms",
                    "unseen after 10 s",
                    "index vectors per host",
                    "fact versions in the database",
                ],
                [
                    [
                        hosts["sightings"],
                        hosts["seen_at_first_read"],
                        hosts["within_1s"],
                        hosts["delay_p50_ms"],
                        hosts["delay_max_ms"],
                        hosts["unseen_after_10s"],
                        " / ".join(str(s) for s in hosts["index_vectors"]),
                        hosts["fact_versions_in_database"],
                    ]
                ],
            ),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200, help="Stored first (fake models).")
    parser.add_argument("--requests", type=int, default=200, help="Warm requests of each kind.")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--no-real", action="store_true", help="Skip the real models.")
    parser.add_argument("--real-requests", type=int, default=3)
    parser.add_argument("--real-cold-runs", type=int, default=2)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0, help="Per load phase.")
    parser.add_argument("--commits", type=int, default=30, help="Three-host writes.")
    parser.add_argument("--pg", default=PG, help="PostgreSQL server ('' skips the hosts).")
    parser.add_argument("--json", type=Path, default=RESULT)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "machine": machine(),
        "command": command_line(),
        "documents": args.documents,
        "seconds": args.seconds,
    }
    with tempfile.TemporaryDirectory(prefix="kbase-server-bench-") as tmp:
        work = Path(tmp)
        result["warm_and_cold"] = warm_and_cold_fake(
            work, args.documents, args.requests, args.cold_runs
        )
        print(json.dumps(result["warm_and_cold"], indent=1), flush=True)
        result["load"] = readers_and_writer(work, args.documents, args.readers, args.seconds)
        print(json.dumps(result["load"], indent=1), flush=True)
        if args.pg:
            result["hosts"] = three_hosts(work, args.pg, args.commits)
            print(json.dumps(result["hosts"], indent=1), flush=True)
        if not args.no_real:
            result["warm_and_cold"] += warm_and_cold_real(
                work, args.real_requests, args.real_cold_runs
            )
            print(json.dumps(result["warm_and_cold"][-2:], indent=1), flush=True)
    result["load_average_end"] = load_average()
    write_json(args.json, result)
    if not args.no_docs:
        update_section(DOC, "server", render(result))
    print(render(result))
    return result


if __name__ == "__main__":
    main()
