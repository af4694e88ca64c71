"""Sparsey (Rinkus 2010, 2014; Rinkus & Leveille 2017): sparse distributed codes chosen by the
familiarity-contingent Code Selection Algorithm, single-trial learning, best-match retrieval.

The model and its parameters: docs/models/sparsey.md. :class:`Sparsey` is the model API (a
hierarchy of :class:`Level` s of macs with :class:`MacParams`, on numba, torch or numpy);
:class:`SparseyNode` is the same hierarchy as an operator kind of the network spec.
"""

from .csa import expansivity, selection_probabilities, selection_weights
from .model import BACKENDS, Codes, Sparsey
from .node import SparseyNode
from .params import INPUT_KINDS, Level, MacParams, all_cells, grid_rf

__all__ = [
    "BACKENDS",
    "INPUT_KINDS",
    "Codes",
    "Level",
    "MacParams",
    "Sparsey",
    "SparseyNode",
    "all_cells",
    "expansivity",
    "grid_rf",
    "selection_probabilities",
    "selection_weights",
]
