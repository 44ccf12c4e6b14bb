"""Retrieval at 100,000 and 1,000,000 fact versions (issue 18): a question's index +
SQL time, now and as of a date, on today's path and on the path before it, in one
process on the same store; recall@8 against exact search; memory per version.

The store is the synthetic one of ``benchmarks/synthstore.py`` (a tenth of the
versions closed by a later document), built once and cached under ``--workdir``.
Fact vectors: MiniLM's, for as many fact texts as ``--real`` holds (embedded
once beforehand, see ``--embed``); the rest are clustered synthetic vectors,
each a real one plus Gaussian noise (cosine about 0.9 to it), said so in the
results. Queries are real MiniLM embeddings of synthetic questions.

- ``current``: ``kb.search`` as shipped (the query embedding timed apart and
  subtracted): validity inside one index search, rows by primary key, seq_as_of
  and the validity filter cached per store state.
- ``before``: the path this replaced, rebuilt here on the same store: an exact
  flat scan, over-fetch rounds filtered with ``valid_until IS NULL AND id IN
  (...)`` (or the as-of condition) through the ORM, documents loaded whole, and
  seq_as_of queried each time.

    nice -n 10 .venv/bin/python -m benchmarks.retrieval_scale --embed 100000
    nice -n 10 .venv/bin/python -m benchmarks.retrieval_scale --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from benchmarks import report, synthstore
from kbase.config import Settings
from kbase.embed import get_embedder
from kbase.embed.base import Embedder, Vectors
from kbase.index.base import IdFilter
from kbase.index.codebook import BITS, SUBVECTORS
from kbase.index.faiss_index import COMPRESS_FROM, RERANK, RERANK_PER, FaissIndex
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_llm
from kbase.reports import Citation, FactHit
from kbase.store.models import Document, Fact
from kbase.vectors import valid_at

K = 8
DEFAULT_WORKDIR = Path("/tmp/kbase-retrieval")
DEFAULT_JSON = Path("benchmarks/results/retrieval_scale.json")
DEFAULT_MARKDOWN = Path("docs/benchmarks.md")
#: Per-coordinate noise of a synthetic copy: cosine about 0.9 to its real vector.
NOISE = 0.0247

_LOAD_INDEX = """
import sys
from pathlib import Path
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
from kbase.index.faiss_index import FaissIndex
before = rss()
index = FaissIndex(Path(sys.argv[1]), int(sys.argv[2]))
import numpy as np
index.search(np.ones(int(sys.argv[2]), dtype=np.float32), 8)  # packs the codes it scans
print(rss() - before, len(index), int(index.compressed))
"""


def _say(message: str) -> None:
    print(f"retrieval_scale: {message}", file=sys.stderr, flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- vectors --------------------------------------------------------------------------------


def embed_real(workdir: Path, n: int) -> None:
    """Embed the first ``n`` fact texts and 300 questions with MiniLM (onnxruntime),
    in chunks that survive an interruption."""
    embedder = get_embedder("minilm-onnx")
    chunks = workdir / "facts"
    chunks.mkdir(parents=True, exist_ok=True)
    queries = workdir / "queries-300-minilm.npy"
    if not queries.exists():
        np.save(queries, embedder.embed(synthstore.query_texts(300)).astype(np.float32))
    texts = synthstore.fact_texts(n)
    for start in range(0, n, 4096):
        path = chunks / f"{start:06d}.npy"
        if not path.exists():
            np.save(path, embedder.embed(texts[start : start + 4096]).astype(np.float32))
            _say(f"embedded {start + 4096} of {n} fact texts")


def real_vectors(workdir: Path) -> np.ndarray:
    """The real fact vectors embedded so far, in text order (whole chunks only)."""
    parts = []
    for start in range(0, 10**7, 4096):
        path = workdir / "facts" / f"{start:06d}.npy"
        if not path.exists():
            break
        parts.append(np.load(path))
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def store_vectors(real: np.ndarray, size: int) -> np.ndarray:
    """``size`` vectors: the real ones first, then noisy copies of them in turn."""
    if size <= len(real):
        return real[:size]
    rng = np.random.default_rng(size)
    out = np.empty((size, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    for start in range(len(real), size, 50_000):
        end = min(start + 50_000, size)
        base = real[np.arange(start, end) % len(real)]
        noisy = base + rng.standard_normal(base.shape).astype(np.float32) * NOISE
        out[start:end] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


class KnownQuestions(Embedder):
    """The embedder, except for the benchmark's questions, whose MiniLM vectors were
    computed beforehand: a search then times index + SQL alone, in wall and in CPU
    time (the query embedding costs the same on either path and is timed elsewhere,
    see the cold-start benchmark)."""

    def __init__(self, inner: Embedder, texts: list[str], vectors: np.ndarray) -> None:
        self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim
        self.known = {t: v for t, v in zip(texts, vectors, strict=True)}

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        if all(t in self.known for t in texts):
            return np.stack([self.known[t] for t in texts])
        return self.inner.embed_batch(texts)


# -- the path before ------------------------------------------------------------------------


def before_search(
    kb: KnowledgeBase, flat: FaissIndex, vector: np.ndarray, as_of: date | None
) -> list[FactHit]:
    """The retrieval this change replaced, as it was, on an exact flat index."""
    with kb.runtime.session() as session:
        with session.begin():
            at_seq = None
            if as_of:
                end = datetime.combine(as_of, dtime.max)
                moment = func.coalesce(Document.published, Document.ingested_at)
                at_seq = int(
                    session.scalar(select(func.max(Document.seq)).where(moment <= end)) or 0
                )
        if at_seq == 0:
            return []
        with session.begin():
            total, fetch = len(flat), 32
            while True:
                ids, scores = flat.search(vector, fetch)
                score_of = {int(i): float(s) for i, s in zip(ids, scores, strict=True)}
                query = valid_at(at_seq).where(Fact.id.in_(list(score_of)))
                hits = [(f, score_of[f.id]) for f in session.scalars(query)]
                if len(hits) >= K or fetch >= total:
                    break
                fetch *= 4
            hits = sorted(hits, key=lambda h: (-h[1], h[0].text, h[0].valid_from))[:K]
        with session.begin():
            pks = {f.document_pk for f, _ in hits}
            docs = {d.pk: d for d in session.scalars(select(Document).where(Document.pk.in_(pks)))}
            return [
                FactHit(
                    f.id,
                    f.text,
                    docs[f.document_pk].doc_id,
                    s,
                    Citation.of(
                        docs[f.document_pk].doc_id,
                        docs[f.document_pk].title,
                        docs[f.document_pk].url,
                        docs[f.document_pk].published,
                    ),
                )
                for f, s in hits
            ]


# -- timing ---------------------------------------------------------------------------------


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    p50, p95 = float(np.percentile(ms, 50)), float(np.percentile(ms, 95))
    return {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "p95_over_p50": round(p95 / p50, 2)}


def _timed(run: Callable[[int], Any], n: int) -> dict[str, dict[str, float]]:
    """Wall and CPU time of ``run(i)`` for each question (after five warm-ups)."""
    for i in range(min(5, n)):
        run(i)
    wall, cpu = [], []
    for i in range(n):
        cpu_start, started = time.process_time(), time.perf_counter()
        run(i)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_start)
    return {"wall": _percentiles(wall), "cpu": _percentiles(cpu)}


def _exact_top(flat: FaissIndex, vector: np.ndarray, valid: IdFilter) -> list[int]:
    return flat.search(vector, K, allowed=valid)[0].tolist()


def _valid_ids(kb: KnowledgeBase, at_seq: int | None) -> np.ndarray:
    def read(session: Any) -> np.ndarray:
        query = valid_at(at_seq).with_only_columns(Fact.id)
        return np.fromiter(session.scalars(query), dtype=np.int64)

    return kb.runtime.read(read)


def _seq(kb: KnowledgeBase, when: date) -> int:
    from kbase.store import queries

    return kb.runtime.read(lambda s: queries.seq_as_of(s, when))


def _index_memory(folder: Path, dim: int) -> tuple[int, int, bool]:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_INDEX, str(folder), str(dim)],
        capture_output=True,
        text=True,
        check=True,
    )
    grown, n, compressed = done.stdout.split()
    return int(grown), int(n), compressed == "1"


def open_store(
    workdir: Path, size: int, real: np.ndarray, embedder: Embedder
) -> tuple[KnowledgeBase, dict[str, Any]]:
    """The cached store of ``size`` facts (built on first use)."""
    n_real = min(size, len(real))
    # A store built earlier (with the real vectors there were then) is reused.
    cached = sorted((workdir / "stores").glob(f"store-{size}-real*/built.json"))
    folder = cached[0].parent if cached else workdir / "stores" / f"store-{size}-real{n_real}"
    built = folder / "built.json"
    model = world_llm()
    settings = Settings(embedder="minilm-onnx")

    def open_kb() -> KnowledgeBase:
        return KnowledgeBase.open(
            folder, settings=settings, embedder=embedder, backend=lambda: model
        )

    if built.exists():
        kb = open_kb()
        info: dict[str, Any] = json.loads(built.read_text())
        started = time.perf_counter()
        kb.runtime.index_size()
        info["index_open_seconds"] = round(time.perf_counter() - started, 2)
        # Saved again by the code measured, so that the file is in its layout (a store
        # built by an earlier version holds that version's file until a write).
        with kb.runtime.session() as session:
            index = kb.runtime.vectors(session).index
        index.save(index.state or "")
        return kb, info
    _say(f"building the store of {size} facts ({n_real} real vectors)")
    texts = synthstore.fact_texts(size)
    vectors = store_vectors(real, size)
    kb = open_kb()
    started = time.perf_counter()
    synthstore.populate(kb, texts, vectors, embedder)
    insert_s = time.perf_counter() - started
    del texts, vectors
    started = time.perf_counter()
    kb.runtime.index_size()  # builds the index from SQL and saves it
    info = {
        "real_vectors": n_real,
        "insert_seconds": round(insert_s, 1),
        "index_build_seconds": round(time.perf_counter() - started, 1),
    }
    built.write_text(json.dumps(info))
    return kb, info


def measure(
    workdir: Path, size: int, real: np.ndarray, queries: np.ndarray, n: int
) -> dict[str, Any]:
    question_texts = synthstore.query_texts(len(queries))
    embedder = KnownQuestions(get_embedder("minilm-onnx"), question_texts, queries)
    kb, info = open_store(workdir, size, real, embedder)
    try:
        folder = kb.runtime.folder
        as_of = synthstore.middle_date(size).date()
        with kb.runtime.session() as session:
            index = kb.runtime.vectors(session).index
        assert isinstance(index, FaissIndex)
        ids, stored = index.vectors()
        flat = FaissIndex(folder / "flat-copy", index.dim, codebook=None)
        flat.add(ids, stored)
        del stored
        out: dict[str, Any] = {
            "fact_versions": size,
            "vectors": (
                "all-MiniLM-L6-v2"
                if info["real_vectors"] == size
                else f"{info['real_vectors']} all-MiniLM-L6-v2, the rest noisy copies of them"
            ),
            "layout": "compressed" if index.compressed else "flat",
            **info,
            "load_before": _load(),
        }
        # The first question after a write reads every version's validity once.
        kb.search(question_texts[0])
        if kb.runtime._vectors is not None:
            kb.runtime._vectors._reads = None  # as after a write
        started = time.perf_counter()
        kb.search(question_texts[0])
        out["first_search_after_a_write_seconds"] = round(time.perf_counter() - started, 3)
        for label, when in (("now", None), ("as_of", as_of)):
            _say(f"{size}: timing {n} questions {label}")
            current = _timed(lambda i, when=when: kb.search(question_texts[i], k=K, as_of=when), n)
            before = _timed(lambda i, when=when: before_search(kb, flat, queries[i], when), n)
            at_seq = _seq(kb, when) if when else None
            valid = IdFilter.of(_valid_ids(kb, at_seq))
            recall = []
            for i in range(n):
                found = [h.id for h in kb.search(question_texts[i], k=K, as_of=when)]
                exact = _exact_top(flat, queries[i], valid)
                recall.append(len(set(found) & set(exact)) / max(len(exact), 1))
            out[label] = {
                "as_of": when.isoformat() if when else None,
                "current": current,
                "before": before,
                "speedup_p50_cpu": round(
                    before["cpu"]["p50_ms"] / max(current["cpu"]["p50_ms"], 1e-6), 1
                ),
                "speedup_p50_wall": round(before["wall"]["p50_ms"] / current["wall"]["p50_ms"], 1),
                "recall_at_8": round(float(np.mean(recall)), 4),
                "recall_at_8_min": round(float(np.min(recall)), 3),
            }
        out["load_after"] = _load()
    finally:
        kb.close()
    grown, n_index, _ = _index_memory(folder / "index", 384)
    out["index_file_bytes_per_version"] = round(
        (folder / "index" / "vectors.faiss").stat().st_size / n_index, 1
    )
    out["index_memory_bytes_per_version"] = round(grown / n_index, 1)
    # Validity arrays (id, from, until) plus one bitmap per cached seq.
    out["validity_memory_bytes_per_version"] = 24
    return out


def render(runs: list[dict[str, Any]]) -> str:
    """The Markdown section for one or more runs (one store size each, or several)."""
    first = runs[0]
    lines = [
        "## Retrieval at 100,000 and 1,000,000 fact versions (issue 18)",
        "",
        f"k = {first['k']}, {first['queries']} questions per row, each timed as index + SQL "
        "(the questions' MiniLM vectors computed beforehand), in CPU time of the process "
        "and in wall time, which on a loaded machine mostly counts waiting; `current` is "
        "`kb.search` as shipped, `before` "
        "the path it replaced, rebuilt in the same process on the same store (exact flat "
        "scan, ORM rows filtered by `valid_until IS NULL AND id IN (...)`, whole documents, "
        "seq_as_of each time). Recall@8 is against an exact search of the versions valid "
        f"then. The compressed layout, from {first['compress_from']:,} vectors on: "
        f"{first['code']} codes scanned, the best max({first['rerank']}, n / "
        f"{first['rerank_per']:,}) candidates re-ranked exactly. Stores are "
        "`benchmarks/synthstore.py`'s, a tenth of the versions closed.",
        "",
    ]
    for run in runs:
        lines.append(f"Machine: {report.describe(run['machine'])}.")
    lines += ["", *["    " + run.get("command", "") for run in runs], ""]
    rows = []
    for run in runs:
        for size in run["sizes"]:
            for label in ("now", "as_of"):
                r = size[label]
                cur, bef = r["current"], r["before"]
                rows.append(
                    [
                        f"{size['fact_versions']:,}",
                        size["vectors"],
                        "now" if label == "now" else f"as of {r['as_of']}",
                        f"{cur['cpu']['p50_ms']:.2f} / {cur['cpu']['p95_ms']:.2f}",
                        f"{cur['wall']['p50_ms']:.2f} / {cur['wall']['p95_ms']:.2f}",
                        cur["cpu"]["p95_over_p50"],
                        f"{bef['cpu']['p50_ms']:.1f} / {bef['cpu']['p95_ms']:.1f}",
                        f"{bef['wall']['p50_ms']:.1f} / {bef['wall']['p95_ms']:.1f}",
                        r["speedup_p50_cpu"],
                        r["recall_at_8"],
                        f"{size['load_before'][0]} / {size['load_after'][0]}",
                    ]
                )
    lines.append(
        report.table(
            [
                "fact versions",
                "fact vectors",
                "asked",
                "current CPU p50 / p95 ms",
                "current wall p50 / p95 ms",
                "CPU p95/p50",
                "before CPU p50 / p95 ms",
                "before wall p50 / p95 ms",
                "before/current CPU p50",
                "recall@8",
                "load 1 min (start / end)",
            ],
            rows,
        )
    )
    lines.append("")
    memory = [
        [
            f"{size['fact_versions']:,}",
            size["layout"],
            size["index_file_bytes_per_version"],
            size["index_memory_bytes_per_version"],
            size["validity_memory_bytes_per_version"],
            size["index_build_seconds"],
            size["first_search_after_a_write_seconds"],
        ]
        for run in runs
        for size in run["sizes"]
    ]
    lines.append(
        report.table(
            [
                "fact versions",
                "index layout",
                "index file B/version",
                "index RSS B/version",
                "validity arrays B/version",
                "index build s",
                "first search after a write s",
            ],
            memory,
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--embed", type=int, help="embed this many fact texts first, then stop")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN)
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        help="write the results of these runs (JSON) to --json and --markdown",
    )
    args = parser.parse_args()
    if args.embed:
        embed_real(args.workdir, args.embed)
        return
    if args.render:
        runs = [json.loads(path.read_text()) for path in args.render]
        report.write_json(args.json, {"runs": runs})
        report.update_section(args.markdown, "retrieval_scale", render(runs))
        return
    real = real_vectors(args.workdir)
    queries = np.load(args.workdir / "queries-300-minilm.npy")[: args.queries]
    if len(real) == 0:
        raise SystemExit("no real vectors yet: run with --embed N first")
    machine = report.machine()
    results: dict[str, Any] = {
        "command": report.command_line(),
        "machine": machine,
        "k": K,
        "queries": len(queries),
        "compress_from": COMPRESS_FROM,
        "code": f"PQ{SUBVECTORS}x{BITS}",
        "rerank": RERANK,
        "rerank_per": RERANK_PER,
        "sizes": [measure(args.workdir, size, real, queries, len(queries)) for size in args.sizes],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    machine["load_average_1m_at_end"] = report.load_average()
    report.write_json(args.json, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
