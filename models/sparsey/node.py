"""A Sparsey hierarchy as an operator kind of the spec (``kind = "sparsey"``).

A :class:`SparseyNode` reads the spikes of one population (input port ``input``: one binary
frame per time step, e.g. a spike source replaying images) and emits, for each level ``i``,
its code as spikes (output ``code<i>``: ``M * Q * K`` cells, one active cell per CM of every
active mac) and its macs' familiarity (output ``familiarity<i>``: ``M`` values, 0 for an
inactive mac). A code output may be the ``pre`` of a projection (e.g. onto a read-out
population) or be probed with ``StateProbe(node, "code0")``.

Reference semantics of step ``t``: the frame ``x_t`` (the input's spikes of step ``t``) goes
up the hierarchy; level ``i`` reads level ``i - 1``'s code of step ``t`` (``U``), its own code
of step ``t - 1`` (``H``) and level ``i + 1``'s code of step ``t - 1`` (``D``), and chooses its
code by the CSA (``learn``: drawn from ``rho`` and learnt single-trial; otherwise the max-V
cells). With ``sequence = False`` the H and D context is cleared before every step (each step
an item of its own). The levels are connected inside the node by their binary weights, which
the engine holds: ``sim.operator(name).model`` is the :class:`~neuromem.models.sparsey.Sparsey`
with what it learnt. The codes depend only on the frames and the seed, not on how a run is cut
into chunks. Implemented on numba and torch (identical codes for the same seed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuromem.backends.operators import register_implementation
from neuromem.errors import SpecError
from neuromem.spec.operators import OperatorNode, Port, register_operator

from .model import Sparsey, host_copy
from .params import INPUT_KINDS, Level, MacParams, check_hierarchy


@register_operator
@dataclass(frozen=True, init=False)
class SparseyNode(OperatorNode):
    """A Sparsey hierarchy reading population ``input`` (see the module docstring).

    Parameters
    ----------
    name : str
    levels : sequence of Level
    input_size : int
        Size of the input population (pixels per frame).
    input : str
        The population whose spikes are the frames.
    seed : int
        Seed of the host RNG that draws the codes.
    learn : bool
        Single-trial learning in every step (``False``: recognition only).
    sequence : bool
        Carry the H and D context from step to step (``False``: every step is an item).
    """

    kind = "sparsey"
    levels: tuple = ()
    input_size: int = 0
    seed: int = 0
    learn: bool = True
    sequence: bool = True

    def __init__(
        self,
        name: str,
        levels: Sequence[Level] = (),
        input_size: int = 0,
        input: str | None = None,
        *,
        seed: int = 0,
        learn: bool = True,
        sequence: bool = True,
        inputs: Mapping[str, str] | None = None,
        drives: Mapping[str, str] | None = None,
    ) -> None:
        values = {
            "name": name,
            "inputs": dict(inputs) if inputs is not None else {"input": input},
            "drives": dict(drives or {}),
            "levels": tuple(levels),
            "input_size": input_size,
            "seed": seed,
            "learn": learn,
            "sequence": sequence,
        }
        for k, v in values.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    def validate(self) -> None:
        where = self.where
        if not all(isinstance(lv, Level) for lv in self.levels):
            raise SpecError(f"{where}: levels must be a sequence of Level")
        n = self.input_size
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SpecError(f"{where}: input_size must be a positive integer, got {n!r}")
        for k in ("learn", "sequence"):
            if not isinstance(getattr(self, k), bool):
                raise SpecError(f"{where}: {k} must be True or False")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"{where}: seed must be an integer >= 0, got {self.seed!r}")
        try:
            check_hierarchy(self.levels, int(n))
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None

    def input_ports(self) -> dict[str, Port]:
        return {"input": Port(int(self.input_size), "spikes")}

    def output_ports(self) -> dict[str, Port]:
        out = {}
        for i, lv in enumerate(self.levels):
            out[f"code{i}"] = Port(lv.cells, "spikes")
            out[f"familiarity{i}"] = Port(lv.macs, "real")
        return out

    def to_fields(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        levels, arrays = [], {}
        for i, lv in enumerate(self.levels):
            levels.append({"params": lv.params.to_dict(), "shape": list(lv.shape)})
            for kind in INPUT_KINDS:
                rf = getattr(lv, f"rf_{kind.lower()}")
                if rf.shape[1]:
                    arrays[f"rf_{kind.lower()}{i}"] = rf
        scalars = {k: getattr(self, k) for k in ("input_size", "seed", "learn", "sequence")}
        return scalars | {"levels": levels}, arrays

    @classmethod
    def from_fields(cls, name, inputs, scalars, arrays, drives=None) -> SparseyNode:
        where = f"operator {name!r} (kind 'sparsey')"
        scalars = dict(scalars)
        described = scalars.pop("levels", None)
        if not isinstance(described, list) or not all(isinstance(d, dict) for d in described):
            raise SpecError(f"{where}: levels must be a list of level descriptions")
        known = {f"rf_{k.lower()}{i}" for i in range(len(described)) for k in INPUT_KINDS}
        unknown = sorted(set(arrays) - known) + sorted(
            set(scalars) - {"input_size", "seed", "learn", "sequence"}
        )
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {unknown}")
        levels = []
        for i, d in enumerate(described):
            if set(d) != {"params", "shape"} or not isinstance(d["params"], dict):
                raise SpecError(f"{where}: level {i} must have exactly 'params' and 'shape'")
            if not isinstance(d["shape"], list):
                raise SpecError(f"{where}: level {i} shape must be a list of integers")
            rfs = {f"rf_{k.lower()}": arrays.get(f"rf_{k.lower()}{i}") for k in INPUT_KINDS}
            if rfs["rf_u"] is None:
                raise SpecError(f"{where}: level {i} has no rf_u{i} array")
            try:  # a file is data: any fault of its values is an error naming the node
                levels.append(Level(MacParams(**d["params"]), shape=tuple(d["shape"]), **rfs))
            except (SpecError, TypeError, ValueError) as exc:
                raise SpecError(f"{where}: level {i}: {exc}") from None
        return cls(name, levels, inputs=inputs, drives=drives, **scalars)


class _SparseyEngine:
    """The node's model on one backend; ``model`` is the :class:`Sparsey` with its weights."""

    backend = ""

    def __init__(self, node: SparseyNode, sim) -> None:
        self.node = node
        batch = getattr(sim, "batch", None)
        if batch not in (None, 1):
            raise SpecError(
                f"{node.where}: runs one sequence of frames (batch 1), the simulation has "
                f"batch {batch}"
            )
        device = str(getattr(sim, "device", "cpu"))
        options = {"device": device} if self.backend == "torch" else {}
        self.model = Sparsey(
            node.levels, node.input_size, seed=node.seed, backend=self.backend, **options
        )

    def reset(self) -> None:
        self.model.reset()

    def run(self, inputs: dict) -> dict[str, np.ndarray]:
        x = inputs["input"]
        x = host_copy(x)
        if x.ndim == 3:  # (T, 1, n): a torch simulation's batch axis
            x = x[:, 0]
        x = x.astype(np.uint8)
        present = self.model.learn if self.node.learn else self.model.recognise
        codes = present(x, sequence=self.node.sequence, carry=True)  # chunks of one run
        out = {}
        for i in range(len(self.node.levels)):
            out[f"code{i}"] = codes.cells(i)
            out[f"familiarity{i}"] = np.nan_to_num(codes.familiarity[i], nan=0.0)
        return out


@register_implementation("sparsey", "numba")
class SparseyNumba(_SparseyEngine):
    """The hierarchy on the numba CSA kernels."""

    backend = "numba"


@register_implementation("sparsey", "torch")
class SparseyTorch(_SparseyEngine):
    """The hierarchy on torch tensors (the simulation's device)."""

    backend = "torch"
