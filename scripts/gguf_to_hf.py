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
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    if (out / "config.json").is_file():
        return
    logging.disable_progress_bar()  # one bar per tensor otherwise, 339 of them
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are dequantized now, but transformers still marks the model as
    # GGUF-quantized and refuses save_pretrained: write the parts one by one.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    partial.mkdir(parents=True)
    config.save_pretrained(partial)
    save_model(model, str(partial / "model.safetensors"))  # handles the tied embeddings
    tokenizer.save_pretrained(partial)
    partial.rename(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(sys.argv[2])
