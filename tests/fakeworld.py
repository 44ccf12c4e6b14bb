"""The fake world lives in the library (``kbase.llm.fake``, the ``fake`` backend);
tests import it from here for brevity."""

from kbase.llm.fake import contradiction, sentences, world, world_llm

__all__ = ["contradiction", "sentences", "world", "world_llm"]
