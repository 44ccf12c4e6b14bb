"""Settings of the selection and the fixed-point boundary.

Vectors become integers once, here, so that cluster sums are exact and do not
depend on the order of summation; everything after this works on integers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from kbase.errors import ConfigError, InputError

DEFAULT_SCALE = 2**16

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Params:
    """Settings of a selection; kept for the life of the knowledge base.

    ``k`` examples are selected; ``eps`` is the lattice step of the quantized
    centroids (in the vectors' units); at most ``max_iter`` (T) Lloyd iterations
    run; a cluster smaller than ``gamma * n / k`` is pulled toward its previous
    centroid; ``seed`` keys every random draw; ``scale`` is the fixed-point scale
    of the vectors (see :func:`quantize_vectors`).
    """

    k: int
    eps: float
    max_iter: int = 10
    gamma: float = 0.2
    seed: int = 0
    scale: int = DEFAULT_SCALE

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"fewshot k must be at least 1, got {self.k}")
        if not self.eps > 0:
            raise ConfigError(f"fewshot eps must be positive, got {self.eps}")
        if self.max_iter < 1:
            raise ConfigError(f"fewshot max_iter must be at least 1, got {self.max_iter}")
        if not 0 <= self.gamma < float("inf"):
            raise ConfigError(f"fewshot gamma must be finite and >= 0, got {self.gamma}")
        if self.scale < 1:
            raise ConfigError(f"fewshot scale must be at least 1, got {self.scale}")
        if self.eps_fixed < 1:
            raise ConfigError(
                f"fewshot eps={self.eps} is below one fixed-point unit: raise eps or scale"
            )

    @property
    def eps_fixed(self) -> int:
        """The lattice step in fixed-point units (an integer, so lattice points are too)."""
        return round(self.eps * self.scale)

    @property
    def gamma_ratio(self) -> Fraction:
        """``gamma`` as an exact rational (the float's binary value)."""
        return Fraction(self.gamma)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Params:
        """Inverse of :meth:`to_json`."""
        return cls(
            k=int(value["k"]),
            eps=float(value["eps"]),
            max_iter=int(value["max_iter"]),
            gamma=float(value["gamma"]),
            seed=int(value["seed"]),
            scale=int(value["scale"]),
        )


def quantize_vectors(vectors: npt.ArrayLike, scale: int = DEFAULT_SCALE) -> IntArray:
    """Float vectors, shape (n, d), to fixed point: ``round(v * scale)`` as int64.

    Do it once, at the boundary, with the same ``scale`` as :class:`Params`.
    """
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"fewshot vectors must have shape (n, d), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError("fewshot vectors contain NaN or infinity: check the embedder")
    scaled = np.rint(array * scale)
    if scaled.size and np.max(np.abs(scaled)) >= 2.0**52:
        raise InputError("fewshot vectors too large for the fixed-point scale: lower scale")
    return scaled.astype(np.int64)
