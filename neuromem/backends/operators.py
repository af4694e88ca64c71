"""Operator nodes on the backends: the registry of implementations, and the run of a chunk.

An operator kind (``neuromem.spec.operators``) is implemented for a backend by a factory
registered from the kind's own module::

    @register_implementation("leaky", "numba")
    class LeakyNumba:
        def __init__(self, node, sim): ...        # sim: the Simulation (dtype, device, batch)
        def reset(self): ...                      # back to the initial state
        def run(self, inputs): ...                # port -> (T, n) or (T, B, n) -> port -> same

``run`` takes the inputs of ``T`` consecutive steps and returns the outputs of those steps,
carrying its state to the next call; a kind whose outputs do not depend on later inputs (every
causal operator) gives the same result for any split of a run into chunks (tests compare chunk
sizes 1 and T). On torch an implementation may be an ``nn.Module``: its parameters become
parameters of the simulation. The capability registry (``neuromem.backends``) is derived from
what is registered here, so no file of the library names a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import CapabilityError, SpecError

_IMPLEMENTATIONS: dict[tuple[str, str], Callable[..., Any]] = {}


def register_implementation(kind: str, backend: str) -> Callable[[Any], Any]:
    """Decorator: ``factory`` implements operator ``kind`` on ``backend``."""

    def deco(factory: Any) -> Any:
        old = _IMPLEMENTATIONS.get((kind, backend))
        if old is not None and getattr(old, "__qualname__", None) != getattr(
            factory, "__qualname__", None
        ):
            raise SpecError(
                f"register_implementation: operator kind {kind!r} already has a {backend} "
                f"implementation ({old.__module__}.{old.__qualname__})"
            )
        _IMPLEMENTATIONS[(kind, backend)] = factory
        return factory

    return deco


def registered() -> list[tuple[str, str]]:
    """Every (operator kind, backend) with an implementation."""
    return list(_IMPLEMENTATIONS)


def backends_with(kind: str) -> list[str]:
    """Backends that have an implementation of ``kind``."""
    return sorted(b for k, b in _IMPLEMENTATIONS if k == kind)


def implementation(kind: str, backend: str) -> Callable[..., Any]:
    """The factory of ``kind`` on ``backend``, or :class:`CapabilityError` naming the backends
    that have one."""
    factory = _IMPLEMENTATIONS.get((kind, backend))
    if factory is None:
        have = backends_with(kind)
        raise CapabilityError(
            f"backend {backend!r} has no implementation of operator kind {kind!r} "
            f"(implemented by: {', '.join(have) or 'no backend'})"
        )
    return factory
