"""The network specification: what a network is, independent of how it is simulated."""

from .connectivity import all_but_self, all_to_all, fixed_probability, one_to_one
from .io import load, save
from .library import hebbian, if_curr_exp, nir_cuba_lif, nir_lif, spike_source, stdp_pair
from .models import NeuronModel, PlasticityRule
from .network import (
    CurrentInput,
    Discretization,
    Network,
    PoissonSpikes,
    Population,
    Projection,
    SpikeArray,
    SpikeProbe,
    StateProbe,
)
from .operators import OperatorNode, Port, register_operator
from .spins import (
    DenseCouplings,
    GlauberSpins,
    LowRankCouplings,
    OverlapProbe,
    diluted_patterns,
    hebbian_couplings,
    noisy_examples,
    supervised_couplings,
    unsupervised_couplings,
)

__all__ = [
    "DenseCouplings",
    "GlauberSpins",
    "LowRankCouplings",
    "OverlapProbe",
    "diluted_patterns",
    "hebbian_couplings",
    "noisy_examples",
    "supervised_couplings",
    "unsupervised_couplings",
    "CurrentInput",
    "Discretization",
    "Network",
    "NeuronModel",
    "OperatorNode",
    "Port",
    "PlasticityRule",
    "PoissonSpikes",
    "Population",
    "Projection",
    "SpikeArray",
    "SpikeProbe",
    "StateProbe",
    "all_but_self",
    "all_to_all",
    "fixed_probability",
    "hebbian",
    "if_curr_exp",
    "load",
    "nir_cuba_lif",
    "nir_lif",
    "one_to_one",
    "register_operator",
    "save",
    "spike_source",
    "stdp_pair",
]
