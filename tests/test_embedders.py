"""The embedders: the registry, and the ONNX MiniLM against sentence-transformers.

``minilm-onnx`` must give the torch embedder's vectors (cosine >= 0.99999 on every
text of a varied conformance set, the same nearest neighbours) without importing
torch. The tests marked ``real`` load the real models (the torch one once per module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from kbase.embed import EMBEDDERS, get_embedder
from kbase.embed import minilm_onnx as mo
from kbase.embed.base import Embedder, Vectors
from kbase.embed.minilm import MiniLMEmbedder
from kbase.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
TOP = 8

_NEWS = [
    "Acme Robotics names Bob Marsh chief executive.",
    "Alice Chen replaces Bob Marsh as chief executive of Acme Robotics.",
    "Acme Robotics opens a second plant in Leeds.",
    "Globex is headquartered in Springfield.",
    "Initech was founded in 1998 by three former bank engineers.",
    "The central bank raised interest rates by a quarter of a point.",
    "Heavy rain flooded the ring road on Tuesday morning.",
    "The museum reopens next spring after a two-year renovation.",
    "Umbrella Corp's chief financial officer resigned on Friday.",
    "A new vaccine trial enrolled 12,000 volunteers across six countries.",
    "The striker scored twice in the final ten minutes.",
    "Shares of the chip maker rose 8% in early trading.",
    "Parliament passed the housing bill by 312 votes to 290.",
    "The mayor announced free bus travel for pupils.",
    "Volcanic ash grounded flights across the north of the island.",
    "Researchers trained a small model to translate whale song.",
]
_QUESTIONS = [
    "Who is the chief executive of Acme Robotics?",
    "Where is Globex based?",
    "Who founded Initech?",
    "What did the central bank do?",
    "how many votes did the housing bill get",
    "WHEN DOES THE MUSEUM REOPEN?",
    "Which flights were grounded, and why?",
    "cfo umbrella",
]
_SHORT = ["a", "?", ".", "rates", "Leeds", "OK", "x y z", "chief executive"]
_UNICODE = [
    "Zürich\u2019s café serves crème brûlée.",
    "東京の天気は晴れです。",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "Emoji only: 🚀🔥🎉",
    "naïve façade coöperate résumé",
    "Ελληνικά γράμματα: αβγδ",
    "한국어 문장입니다",
]
_NUMBERS = [
    "3.14159",
    "2024-05-02",
    "+44 20 7946 0958",
    "$1,250,000.00",
    "42",
    "0x1F 0b1010 1e-9",
    "Q3 revenue: 4.2bn (+7.5% y/y)",
]
#: Whitespace alone tokenises as "" does: the truncation test has it, not this set.
_EMPTYISH = ["", "#", "...", "[CLS] [SEP] [PAD]", "-- -- --"]


def _long(topic: str, count: int) -> str:
    return " ".join(
        f"{topic} report, paragraph {i}: the committee reviewed item {i}." for i in range(count)
    )


_LONG = [
    _long("Budget", 40),
    _long("Harbour", 55),
    _long("Railway", 70),
    "word " * 400,
    " ".join(_NEWS) * 3,
]
#: The conformance set: short and long (past 256 tokens), unicode, digits, empty-ish.
CONFORMANCE: list[str] = _NEWS + _QUESTIONS + _SHORT + _UNICODE + _NUMBERS + _EMPTYISH + _LONG


# -- without the real models ------------------------------------------------------------


def test_the_onnx_embedder_is_registered_and_loads_nothing_until_used() -> None:
    assert {"minilm", "minilm-onnx", "fake"} <= set(EMBEDDERS)
    embedder = get_embedder("minilm-onnx")
    assert isinstance(embedder, mo.OnnxMiniLMEmbedder)
    assert embedder._session is None
    # One model on two runtimes: the same id, so they share the embedding cache.
    assert embedder.model_id == MiniLMEmbedder.model_id == "all-MiniLM-L6-v2"
    assert embedder.dim == MiniLMEmbedder.dim == 384


def test_mean_pooling_ignores_padding_and_normalises() -> None:
    tokens = np.array(
        [[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]], [[0.0, 2.0], [9.0, 9.0], [9.0, 9.0]]],
        dtype=np.float32,
    )
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.int64)
    pooled = mo.mean_pool_normalise(tokens, mask)
    expected = np.array([[2.0, 2.0], [0.0, 2.0]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
    none = mo.mean_pool_normalise(tokens[:1], np.zeros((1, 3), dtype=np.int64))
    assert np.isfinite(none).all()


def _stamped(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / mo.FILENAME
    model.write_bytes(b"graph bytes " * 100)
    source = tmp_path / "model.safetensors"
    source.write_bytes(b"weights " * 100)
    stamp = {
        "format": mo.EXPORT_FORMAT,
        "onnx": mo.file_record(model),
        "source": mo.file_record(source),
        "onnxruntime": mo.onnxruntime_version(),
    }
    mo.write_stamp(model, stamp)
    return model, source


def _stamp(model: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(mo.stamp_path(model).read_text())
    return data


def test_the_stamp_vouches_for_the_exported_bytes_only(tmp_path: Path) -> None:
    model, source = _stamped(tmp_path)
    assert mo.verified_model(tmp_path, source=source) == model
    # Touched, same bytes: hashed again, accepted, stamped anew.
    os.utime(model, ns=(1, 1))
    assert mo.verified_model(tmp_path, source=source) == model
    assert _stamp(model)["onnx"]["mtime_ns"] == 1
    # Other bytes: refused (it must be exported again).
    model.write_bytes(b"other bytes " * 100)
    assert mo.verified_model(tmp_path, source=source) is None


def test_the_stamp_follows_the_weights_format_and_runtime(tmp_path: Path) -> None:
    model, source = _stamped(tmp_path)
    source.write_bytes(b"new weights " * 100)
    assert mo.verified_model(tmp_path, source=source) is None

    model, source = _stamped(tmp_path)
    stamp = _stamp(model)
    mo.write_stamp(model, {**stamp, "format": mo.EXPORT_FORMAT + 1})
    assert mo.verified_model(tmp_path, source=source) is None

    # Another onnxruntime: the graph is re-checked on the stamp's reference vectors,
    # which this stamp lacks (and these bytes are no graph).
    mo.write_stamp(model, {**stamp, "onnxruntime": "0.0.1"})
    assert mo.verified_model(tmp_path, source=source) is None
    mo.write_stamp(
        model,
        {**stamp, "onnxruntime": "0.0.1", "reference": {"texts": ["a"], "vectors": [[1.0]]}},
    )
    assert mo.verified_model(tmp_path, source=source) is None

    mo.stamp_path(model).unlink()
    assert mo.verified_model(tmp_path, source=source) is None


def test_a_failed_export_says_how_to_make_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def failing(command: list[str], **_: Any) -> Any:
        calls.append(command)
        return SimpleNamespace(returncode=1, stdout="", stderr="Error: torch is not installed")

    monkeypatch.setattr(mo, "package_dir", lambda: tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"w")
    monkeypatch.setattr(mo.subprocess, "run", failing)
    with pytest.raises(ModelError, match=r"torch is not installed.*kbase\.embed\.onnx_export"):
        mo.ensure_model(tmp_path / "cache")
    assert calls and calls[0][1:3] == ["-m", "kbase.embed.onnx_export"]
    assert str(tmp_path / "cache") in calls[0]


# -- against sentence-transformers ------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_embedder() -> mo.OnnxMiniLMEmbedder:
    return mo.OnnxMiniLMEmbedder()


@pytest.fixture(scope="module")
def torch_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def torch_vectors(torch_embedder: MiniLMEmbedder) -> Vectors:
    return torch_embedder.embed(CONFORMANCE)


def _top(vectors: Vectors) -> list[list[int]]:
    scores = vectors @ vectors.T
    return [list(np.argsort(-row, kind="stable")[:TOP]) for row in scores]


@pytest.mark.real
def test_the_conformance_set_is_varied() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(mo.package_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in CONFORMANCE]
    assert len(CONFORMANCE) >= 50
    assert sum(n > 256 for n in lengths) >= 4  # truncated by both
    assert min(lengths) == 0
    assert any(not t.isascii() for t in CONFORMANCE)
    # No two texts tokenise alike: neighbour order then has no exact ties.
    tokens = {tuple(tokenizer.encode(t).ids[:256]) for t in CONFORMANCE}
    assert len(tokens) == len(CONFORMANCE)


@pytest.mark.real
def test_onnx_vectors_match_sentence_transformers(
    onnx_embedder: Embedder, torch_vectors: Vectors
) -> None:
    batched = onnx_embedder.embed(CONFORMANCE)
    single = np.concatenate([onnx_embedder.embed([t]) for t in CONFORMANCE])
    for ours in (batched, single):
        assert ours.shape == torch_vectors.shape == (len(CONFORMANCE), 384)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
        cosines = (ours * torch_vectors).sum(axis=1)
        worst = int(np.argmin(cosines))
        assert cosines.min() >= 0.99999, (CONFORMANCE[worst][:60], float(cosines.min()))
        assert _top(ours) == _top(torch_vectors)


@pytest.mark.real
def test_texts_past_256_tokens_are_truncated_like_sentence_transformers(
    onnx_embedder: Embedder, torch_embedder: MiniLMEmbedder
) -> None:
    head = "word " * 300
    texts = [head + "apples and pears", head + "a different ending entirely", "", " \t\n "]
    ours = onnx_embedder.embed(texts)
    assert np.array_equal(ours[0], ours[1])
    assert np.array_equal(ours[2], ours[3])
    theirs = torch_embedder.embed(texts)
    assert (ours * theirs).sum(axis=1).min() >= 0.99999


@pytest.mark.real
def test_the_runtime_path_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from kbase.embed import get_embedder\n"
        "v = get_embedder('minilm-onnx').embed(['Who runs Acme Robotics?', ''])\n"
        "assert v.shape == (2, 384), v.shape\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}\n"
        "               & {'torch', 'transformers', 'sentence_transformers', 'onnx'})\n"
        "assert not heavy, heavy\n"
        "assert 'onnxruntime' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.real
@pytest.mark.slow
def test_export_into_a_fresh_folder_checks_and_stamps(tmp_path: Path) -> None:
    from kbase.embed.onnx_export import export

    made = export(tmp_path)
    assert made.exported and made.min_cosine is not None and made.min_cosine >= mo.MIN_COSINE
    assert mo.verified_model(tmp_path) == made.path == tmp_path / mo.FILENAME
    assert export(tmp_path).exported is False
    vectors = mo.OnnxMiniLMEmbedder(directory=tmp_path).embed(["a fresh export"])
    assert vectors.shape == (1, 384)
