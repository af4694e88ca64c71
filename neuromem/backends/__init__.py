"""Backends behind one entry point: ``neuromem.compile(net, backend=..., dt=...)``.

Each backend declares the features it supports here (so that an error can name the backends
that do have a feature without importing them all); the operator kinds a backend runs are the
ones with an implementation registered for it (backends/operators.py). Nothing falls back
silently.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import CapabilityError, SpecError
from ..spec.network import Network, PoissonSpikes, StateProbe

_COMMON = frozenset(
    {
        "integrator:exponential_euler",
        "integrator:euler",
        "reset_mode:same_step",
        "delays",
        "plasticity",
        "spike_source:array",
        "spike_source:poisson",
        "spike_source:runtime",
        "current_input",
        "probe:spikes",
        "probe:state",
        "dtype:float64",
    }
)

#: backend name -> (module path, class name, capabilities)
REGISTRY: dict[str, tuple[str, str, frozenset[str]]] = {
    "numba": (
        "neuromem.backends.numba",
        "NumbaSimulation",
        _COMMON | {"reset_mode:next_step", "device:cpu", "spins"},
    ),
    "torch": (
        "neuromem.backends.torch",
        "TorchSimulation",
        _COMMON
        | {
            "reset_mode:next_step",
            "dtype:float32",
            "batch",
            "autograd",
            "device:cpu",
            "device:cuda",
            "spins",
        },
    ),
    "brian2": ("neuromem.backends.brian2", "Brian2Simulation", _COMMON | {"device:cpu"}),
}


def required_features(net: Network, **options: Any) -> set[str]:
    """The features a backend needs to run ``net`` with the given compile options."""
    d = net.discretization
    feats = {f"integrator:{d.integrator}", f"reset_mode:{d.reset_mode}", "probe:spikes"}
    for p in net.populations:
        if p.model.spike_source:
            feats.add(
                "spike_source:runtime"
                if p.stimulus is None
                else "spike_source:poisson"
                if isinstance(p.stimulus, PoissonSpikes)
                else "spike_source:array"
            )
    if any(pr.plasticity is not None for pr in net.projections):
        feats.add("plasticity")
    if net.projections:
        feats.add("delays")
    if net.currents or any(op.drives for op in net.operators):
        feats.add("current_input")
    if any(isinstance(pb, StateProbe) for pb in net.probes):
        feats.add("probe:state")
    if net.spins:
        feats.add("spins")
    feats |= {f"operator:{op.kind}" for op in net.operators}
    if options.get("dtype") is not None:
        feats.add(f"dtype:{str(options['dtype']).replace('torch.', '')}")
    if options.get("device") is not None:
        feats.add(f"device:{str(options['device']).split(':')[0]}")
    if options.get("batch_size", 1) != 1:
        feats.add("batch")
    return feats


def capabilities(backend: str) -> frozenset[str]:
    """What ``backend`` can run: its declared features plus ``operator:<kind>`` for every
    operator kind with an implementation registered for it (backends/operators.py)."""
    from .operators import registered

    ops = {f"operator:{kind}" for kind, b in registered() if b == backend}
    return REGISTRY[backend][2] | frozenset(ops)


def check_capabilities(backend: str, features: set[str]) -> None:
    """Raise :class:`CapabilityError` naming each missing feature and who has it."""
    missing = sorted(features - capabilities(backend))
    if missing:
        lines = []
        for f in missing:
            have = [b for b in REGISTRY if f in capabilities(b)]
            lines.append(f"{f!r} (supported by: {', '.join(have) or 'no backend'})")
        raise CapabilityError(
            f"backend {backend!r} cannot run this network: it lacks " + "; ".join(lines)
        )


def available_backends() -> dict[str, frozenset[str]]:
    """Backend name -> capabilities (declared features and registered operator kinds)."""
    return {k: capabilities(k) for k in REGISTRY}


def compile(net: Network, backend: str = "numba", dt: float | None = None, **options: Any):
    """Compile a network for a backend.

    Parameters
    ----------
    net : Network
    backend : {"numba", "torch", "brian2"}
    dt : float, optional
        If given, must equal ``net.discretization.dt`` (ms): the time step is part of the spec.
    **options
        Backend options, e.g. ``dtype``, ``device``, ``batch_size`` for torch.

    Returns
    -------
    Simulation
        With ``run(steps, inputs)``, ``probes``, ``state``, ``reset()``.
    """
    if not isinstance(net, Network):
        raise SpecError(f"compile: expected a neuromem.spec.Network, got {type(net).__name__}")
    if backend not in REGISTRY:
        raise CapabilityError(f"unknown backend {backend!r}; available: {', '.join(REGISTRY)}")
    if dt is not None and dt != net.discretization.dt:
        raise SpecError(
            f"compile: dt={dt} ms differs from the network's discretization dt="
            f"{net.discretization.dt} ms; change the spec, not the compile call"
        )
    check_capabilities(backend, required_features(net, **options))
    module, cls, _ = REGISTRY[backend]
    return getattr(importlib.import_module(module), cls)(net, **options)
