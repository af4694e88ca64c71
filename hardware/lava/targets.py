"""Adapters that let :func:`neuromem.hardware.compile` call the Lava exporter for a profile."""

from __future__ import annotations

from typing import Any

from neuromem.spec import Network

from .checks import list_unsupported
from .emit import LavaEmission, emit
from .mapping import semantic_differences


def _profile_target(profile: Any) -> str:
    return str(getattr(profile, "target", profile))


def unsupported_for_profile(
    net: Network, profile: Any, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """:func:`list_unsupported` with ``"target"`` set to the profile's target (e.g. loihi2)."""
    tgt = _profile_target(profile)
    return [
        {**p, "target": f"{tgt} ({p['target']})"}
        for p in list_unsupported(net, precision, plasticity)
    ]


def differences_for_profile(
    net: Network, profile: Any, precision: str = "floating_pt", plasticity: str = "refuse"
) -> list[dict]:
    """:func:`semantic_differences` for ``compile(net, target)`` (profile unused but named)."""
    return semantic_differences(net, precision, plasticity)


def emit_for_profile(net: Network, profile: Any, steps: int, **options: Any) -> LavaEmission:
    """:func:`emit` for ``compile(net, target)``: ``options`` are emit's keyword arguments."""
    return emit(net, steps, **options)
