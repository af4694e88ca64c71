"""Hopfield retrieval, the convenience API: classical (Hebbian, sign update) and modern (dense
associative memory) retrieval of stored patterns, on numpy, numba or torch.

A thin layer over :mod:`neuromem.models.hopfield`, where the kernels live and where retrieval
is also an operator kind of the spec (``HopfieldNode``: a memory inside a network that cleans up
a population's activity). See that module for the equations, tie rules and validation.
"""

from neuromem.models.hopfield.retrieval import (
    HopfieldMemory,
    RetrievalError,
    classical_field,
    classical_retrieve,
    modern_retrieve,
)

__all__ = [
    "HopfieldMemory",
    "RetrievalError",
    "classical_field",
    "classical_retrieve",
    "modern_retrieve",
]
