"""Hopfield memories: classical (Hopfield 1982) and modern (Ramsauer et al. 2020) retrieval.

- :mod:`.retrieval`: the kernels and :class:`HopfieldMemory` (numpy reference, numba, torch);
  ``neuromem.retrieval`` is the convenience API over it.
- :mod:`.operator`: :class:`HopfieldNode`, the operator kind ``"hopfield"`` of the spec, so a
  memory can clean up a spiking population's activity inside one network (numba and torch).
"""

from .operator import HopfieldNode
from .retrieval import (
    HopfieldMemory,
    RetrievalError,
    classical_field,
    classical_retrieve,
    modern_retrieve,
)

__all__ = [
    "HopfieldMemory",
    "HopfieldNode",
    "RetrievalError",
    "classical_field",
    "classical_retrieve",
    "modern_retrieve",
]
