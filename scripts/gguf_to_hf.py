"""Write a Hugging Face model folder (safetensors) from a GGUF file, offline.

vLLM cannot read GGUF on CPU, and no machine here reaches a model hub: this turns
the embedded model into a folder vLLM loads, so the vLLM tests run on the same
model as the rest of the suite. transformers dequantizes the GGUF weights (needs
the ``gguf`` package); the folder is written under a temporary name and renamed
when complete, so an interrupted run leaves nothing that looks usable.

    python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    """Write ``out`` (config, bf16 safetensors, tokenizer) unless it is already there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").is_file():
        return
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(sys.argv[2])
