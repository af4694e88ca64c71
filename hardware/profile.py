"""Hardware profiles: the limits of one target, read from a data file (``profiles/<target>.json``).

A profile states what a target can hold and with what precision; ``neuromem.hardware.compile``
checks a network against it. Each file cites where its numbers come from, and says which are
estimates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SpecError

FORMAT = "neuromem-hardware-profile"
VERSION = 1


@dataclass(frozen=True)
class HardwareProfile:
    """The limits of one hardware target.

    Attributes
    ----------
    target : str
        Target name (``loihi2``, ``spinnaker1``, ...).
    title, sources, limits_note : str, list of str, str
        What the profile describes and where its numbers come from.
    emitter : str or None
        The neuromem.hardware module that emits code for the target (``lava``, ``pynn``,
        ``nir``), or None when there is none yet.
    timestep : dict
        ``allowed_ms`` (list, optional): the time steps the target runs, in ms.
    neuron_models, plasticity : list of str
        Spec model and rule names the target runs exactly.
    plasticity_approximate : dict
        Rule name -> how the target runs it differently (compiled, with the difference in
        the report).
    weights : dict or None
        ``bits``, ``signed``, ``scaling`` (``power_of_two_per_projection`` or
        ``power_of_two_per_post_population_and_port``); None for floating-point targets.
    decay : dict or None
        ``bits`` of the decay representation; None for floating-point targets.
    neurons_per_core, cores_per_chip, max_fan_in : int or None
        Mapping limits (None: no limit stated).
    delay_steps : dict
        ``min`` and ``max`` synaptic delay in time steps (``max`` None: unbounded).
    """

    target: str
    title: str
    emitter: str | None
    sources: list[str]
    timestep: dict[str, Any]
    neuron_models: list[str]
    plasticity: list[str]
    plasticity_note: str
    weights: dict[str, Any] | None
    decay: dict[str, Any] | None
    neurons_per_core: int | None
    cores_per_chip: int | None
    max_fan_in: int | None
    delay_steps: dict[str, int | None]
    limits_note: str = ""
    plasticity_approximate: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def available_targets() -> list[str]:
    """Names of the profiles shipped with neuromem."""
    folder = resources.files(__package__).joinpath("profiles")
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(target: str | Path) -> HardwareProfile:
    """Load a shipped profile by target name, or a profile file by path.

    Raises
    ------
    SpecError
        Unknown target, unreadable file, wrong format or a missing field (named).
    """
    if isinstance(target, Path) or str(target).endswith(".json"):
        path = Path(target)
        try:
            text = path.read_text()
        except OSError as e:
            raise SpecError(f"hardware profile {str(path)!r}: cannot read ({e})") from e
        where = str(path)
    else:
        if target not in available_targets():
            raise SpecError(
                f"hardware target {target!r}: unknown (profiles: {', '.join(available_targets())})"
            )
        text = resources.files(__package__).joinpath("profiles", f"{target}.json").read_text()
        where = f"profiles/{target}.json"
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"hardware profile {where}: not JSON ({e})") from e
    if d.get("format") != FORMAT or d.get("version") != VERSION:
        raise SpecError(
            f"hardware profile {where}: format {d.get('format')!r} version {d.get('version')!r}, "
            f"expected {FORMAT!r} version {VERSION}"
        )
    optional = ("raw", "limits_note", "plasticity_approximate")
    names = [f for f in HardwareProfile.__dataclass_fields__ if f not in optional]
    missing = [f for f in names if f not in d]
    if missing:
        raise SpecError(f"hardware profile {where}: missing field(s) {', '.join(missing)}")
    return HardwareProfile(
        **{f: d[f] for f in names},
        limits_note=d.get("limits_note", ""),
        plasticity_approximate=dict(d.get("plasticity_approximate", {})),
        raw=d,
    )
