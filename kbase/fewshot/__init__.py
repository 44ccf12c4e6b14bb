"""Few-shot examples: the pool (:mod:`kbase.fewshot.pool`), the records users add
(:mod:`kbase.fewshot.curation`), and the selection that can forget an example exactly.

Quantized k-means picks one example per cluster (ERASE, Muresanu et al. 2024;
Q-k-means, Ginart et al. 2019); :meth:`Selection.unlearn` returns, bit for bit,
the selection a fresh fit without the example would give. See the design note
``fewshot.md``.
"""

from kbase.fewshot.example import Chosen, Example
from kbase.fewshot.params import DEFAULT_SCALE, Params, quantize_vectors
from kbase.fewshot.selection import Selection, Trace

__all__ = ["DEFAULT_SCALE", "Chosen", "Example", "Params", "Selection", "Trace", "quantize_vectors"]
