"""What every backend's simulation shares: input checking, stimulus assembly, probe storage."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CapabilityError, SimulationError, SpecError
from ..lower import Program, check_spike_raster, lower, source_spikes
from ..progress import progress_bar
from ..spec.network import Network, StateProbe


@dataclass
class Probes:
    """Recorded data, appended over successive ``run`` calls until ``reset``.

    Attributes
    ----------
    spikes : dict[str, np.ndarray]
        Population -> bool raster of shape (steps, size) (torch batches: (steps, batch, size)),
        for ``SpikeProbe(format="raster")``.
    events : dict[str, tuple[np.ndarray, ...]]
        Population -> (steps, neurons) int64 arrays of every spike in time order, ascending
        neuron within a step, for ``SpikeProbe(format="events")``; steps count from the first
        step recorded here. Torch batches: (steps, batch, neurons), ordered by step, batch,
        neuron (what ``np.nonzero`` of the batch raster gives).
    state : dict[str, np.ndarray]
        ``"population.variable"`` -> values of shape (steps, recorded neurons).
    n_steps : int
        Steps recorded.
    """

    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    n_steps: int = 0

    def append(
        self,
        spikes: dict[str, np.ndarray],
        state: dict[str, np.ndarray],
        events: dict[str, tuple[np.ndarray, ...]] | None = None,
        steps: int = 0,
    ) -> None:
        """Append ``steps`` steps of records; event steps are relative to their first step."""
        for store, new in ((self.spikes, spikes), (self.state, state)):
            for k, v in new.items():
                store[k] = v if k not in store else np.concatenate([store[k], v], axis=0)
        for k, (t, *rest) in (events or {}).items():
            new = (np.asarray(t, dtype=np.int64) + self.n_steps, *rest)
            old = self.events.get(k)
            self.events[k] = (
                new
                if old is None
                else tuple(np.concatenate([a, b]) for a, b in zip(old, new, strict=True))
            )
        self.n_steps += steps

    def spike_times(self, population: str) -> tuple[np.ndarray, ...]:
        """(steps, neuron indices) of every recorded spike of ``population``: the events of an
        events probe, else the nonzero entries of the raster (torch batches: (steps, batch,
        neurons))."""
        if population in self.events and population not in self.spikes:
            return self.events[population]
        return np.nonzero(self.spikes[population])


class Simulation:
    """Base class: ``run(steps, inputs)``, ``probes``, ``state``, ``reset()``, ``t`` (steps run).

    Inputs to ``run`` map a spike-source population name to a bool raster (steps, size), which
    adds to its stimulus, or ``"population.variable"`` to an external current (steps, size) or
    (size,), which adds to any current input of the spec.
    """

    backend = "base"

    def __init__(self, net: Network, check_finite: bool = True, **options: Any) -> None:
        if options:
            raise CapabilityError(
                f"backend {self.backend!r}: unknown option(s) {', '.join(sorted(options))}"
            )
        if not isinstance(check_finite, bool):
            raise SpecError(f"backend {self.backend!r}: check_finite must be True or False")
        #: raise SimulationError when a state variable or weight is NaN/inf after a run chunk
        self.check_finite = check_finite
        self.net = net
        self.program: Program = lower(net)
        self.probes = Probes()
        self.t = 0
        self._spin_nodes: list = []  # backends that run spins fill this (see backends/spins.py)
        self._operators: dict = {}  # name -> engine (backends/operators.py)
        self._operator_carry: dict[str, np.ndarray] = {}  # virtual source -> last output
        self._ahead: frozenset[str] = frozenset()  # operators run before the spiking part

    # --------------------------------------------------------------- input assembly
    def _spike_inputs(self, steps: int, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Bool (steps, size) raster for every spike-source population (stimulus + inputs)."""
        out = {}
        for name, p in self.program.populations.items():
            if not p.spike_source:
                continue
            out[name] = source_spikes(
                p.stimulus,
                p.size,
                p.dt,
                self.t,
                steps,
                inputs.get(name),
                f"run: input for population {name!r}",
            )
        return out

    def _current_inputs(
        self, steps: int, inputs: dict[str, Any]
    ) -> dict[tuple[str, str], np.ndarray]:
        """(steps, size) float64 drive for every driven (population, input variable)."""
        out: dict[tuple[str, str], np.ndarray] = {}
        for (pop, var), values in self.program.currents.items():
            size = self.program.populations[pop].size
            if values.shape[0] == 1:
                out[(pop, var)] = np.broadcast_to(values, (steps, size)).copy()
            else:
                rows = values[self.t : self.t + steps]
                block = np.zeros((steps, size))
                block[: rows.shape[0]] = rows
                out[(pop, var)] = block
        for key, values in inputs.items():
            if "." not in key:
                continue
            pop, var = key.split(".", 1)
            p = self.program.populations[pop]
            if var not in p.inputs:
                raise SpecError(
                    f"run: {var!r} is not an input variable of population {pop!r} "
                    f"(inputs: {', '.join(p.inputs) or 'none'})"
                )
            v = np.asarray(values, dtype=np.float64)
            v = np.broadcast_to(v, (steps, p.size)) if v.shape == (p.size,) else v
            if v.shape != (steps, p.size):
                raise SpecError(
                    f"run: input {key!r} has shape {v.shape}, expected "
                    f"({steps}, {p.size}) or ({p.size},)"
                )
            if not np.all(np.isfinite(v)):
                raise SpecError(f"run: input {key!r} has non-finite values")
            out[(pop, var)] = out.get((pop, var), 0.0) + v
        return out

    def _check_inputs(self, steps: int, inputs: dict[str, Any] | None) -> dict[str, Any]:
        """Refuse what ``run`` cannot mean; returns the inputs as checked numpy arrays."""
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
            raise SpecError(f"run: steps must be a non-negative integer, got {steps!r}")
        if inputs is not None and not isinstance(inputs, dict):
            raise SpecError(f"run: inputs must be a dict, got {type(inputs).__name__}")
        checked = {}
        for key, value in (inputs or {}).items():
            if not isinstance(key, str):
                raise SpecError(f"run: input key {key!r} is not a string")
            pop, _, var = key.partition(".")
            if pop not in self.program.populations:
                raise SpecError(f"run: input for undefined population {pop!r}")
            if pop in self.program.operator_sources:
                raise SpecError(f"run: {pop!r} is fed by an operator, not by inputs")
            p = self.program.populations[pop]
            if not var and not p.spike_source:
                raise SpecError(
                    f"run: population {pop!r} is not a spike source; spikes can only "
                    "be given to spike-source populations"
                )
            checked[key] = (
                check_spike_raster(value, steps, p.size, f"run: input for population {pop!r}")
                if not var
                else self._check_current(key, value, steps, p)
            )
        return checked

    def _check_current(self, key: str, value: Any, steps: int, p) -> np.ndarray:
        var = key.partition(".")[2]
        if var not in p.inputs:
            raise SpecError(
                f"run: {var!r} is not an input variable of population {p.name!r} "
                f"(inputs: {', '.join(p.inputs) or 'none'})"
            )
        a = np.asarray(value)
        if a.dtype.kind not in "iuf":
            raise SpecError(f"run: input {key!r} must be numbers, got dtype {a.dtype}")
        if a.shape not in ((steps, p.size), (p.size,)):
            raise SpecError(
                f"run: input {key!r} has shape {a.shape}, expected "
                f"({steps}, {p.size}) or ({p.size},)"
            )
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise SpecError(f"run: input {key!r} has non-finite values")
        return a

    def _nonfinite(self) -> tuple[str, str, int, float] | None:
        """(element, variable, index, value) of the first NaN/inf in the state and weights, or
        None. Backends may override it with a faster scan of their own arrays."""
        state = self.state
        for pop, variables in state.items():
            for var, values in variables.items():
                a = np.asarray(values)
                if a.dtype.kind == "f":
                    bad = ~np.isfinite(a)
                    if bad.any():
                        i = int(np.argmax(bad.reshape(-1)))
                        return pop, var, i, float(a.reshape(-1)[i])
        return None

    def _raise_nonfinite(self, t0: int, recorded: dict[str, np.ndarray]) -> None:
        found = self._nonfinite()
        if found is None:
            return
        element, var, i, value = found
        t1 = self.t - 1
        if element == "weights":
            what = f"projection {var!r}: weight {i} (spec order)"
        else:
            what = f"population {element!r}, variable {var!r}, neuron {i}"
        first = ""
        rec = recorded.get(f"{element}.{var}")
        idx = self._probe_indices(element, var)
        if rec is not None and idx is not None and i in idx:
            col = rec.reshape(rec.shape[0], -1)[:, list(idx).index(i)]
            bad = np.nonzero(~np.isfinite(col))[0]
            if bad.size:
                first = f"; recorded first as non-finite in step {t0 + int(bad[0])}"
        raise SimulationError(
            f"{self.backend} {self.net.name}: {what} is {value} at step {t1} (checked at the "
            f"end of the run chunk of steps {t0}..{t1}{first}); the simulation state is kept "
            "as it is. compile(..., check_finite=False) turns this check off."
        )

    def _probe_indices(self, pop: str, var: str) -> np.ndarray | None:
        for p, v, idx in self.program.state_probes:
            if (p, v) == (pop, var):
                return idx
        return None

    # --------------------------------------------------------------- operator nodes
    def _build_operators(self) -> None:
        """One engine per operator node from the implementations registered for this backend
        (backends call it once their own set-up, e.g. dtype and device, is done)."""
        from .operators import implementation

        self._operators = {
            name: implementation(op.kind, self.backend)(op, self)
            for name, op in self.program.operators.items()
        }
        self._ahead = self._operators_ahead()

    def _operators_ahead(self) -> frozenset[str]:
        """Operators whose inputs are known before the spiking part of a step runs: spikes of
        spike sources (stimuli and run inputs) and outputs of such operators. They run first,
        over the whole chunk; the others run after it on the recorded spikes."""
        pops = self.program.populations
        virtual = self.program.operator_sources
        ahead: set[str] = set()
        for name, op in self.program.operators.items():  # readers after what they read
            if all(
                (port is None and pops[src].spike_source and src not in virtual)
                or (port is not None and src in ahead)
                for src, port in op.sources().values()
            ):
                ahead.add(name)
        return frozenset(ahead)

    def _operators_step_locked(self) -> bool:
        """An output that drives the network comes from an operator that reads the network."""
        return any(op not in self._ahead for op, _ in self._operator_feeds())

    def _operator_context(self):
        """Context for operator engines in ``run`` (torch: no autograd graph)."""
        return contextlib.nullcontext()

    def _run_operators(
        self, spikes: dict, ahead: bool = False, outputs=None, in_graph: bool = False
    ) -> dict[tuple[str, str], Any]:
        """Run the ahead (or the remaining) operators on ``spikes`` (population -> values of
        the chunk's steps); returns ``outputs`` updated, (node, port) -> values. ``in_graph``
        (torch ``forward``): keep the engines' tensors and their autograd graph; otherwise
        outputs are host arrays."""
        outputs = dict(outputs or {})
        context = contextlib.nullcontext() if in_graph else self._operator_context()
        with context:
            for name, engine in self._operators.items():
                if (name in self._ahead) != ahead:
                    continue
                op = self.program.operators[name]
                inputs = {
                    port: spikes[src] if out is None else outputs[(src, out)]
                    for port, (src, out) in op.sources().items()
                }
                result = engine.run(inputs)
                for port in op.output_ports():
                    if port not in result:
                        raise SimulationError(
                            f"{op.where}: the {self.backend} implementation gave no output {port!r}"
                        )
                    outputs[(name, port)] = result[port] if in_graph else _host(result[port])
        return outputs

    def _operator_feeds(self) -> list[tuple[str, str]]:
        """The (operator, port) outputs that drive the network: spike outputs that are the pre
        of a projection, real outputs that drive population inputs."""
        prog = self.program
        feeds = list(prog.operator_sources.values())
        feeds += [f for fs in prog.operator_currents.values() for f in fs]
        return list(dict.fromkeys(feeds))

    def _delayed(self, op: str, port: str, n: int, size: int, outputs) -> np.ndarray:
        """(n, size) values of an operator output one step late: in step t its output of step
        t - 1 (zero before the first step). Without this chunk's output (a step-locked run,
        n == 1) the carried output of the previous step."""
        carry = self._operator_carry.get((op, port))
        carry = np.zeros(size) if carry is None else carry
        if carry.ndim != 1:
            raise CapabilityError(
                f"{self.backend}: operator {op!r} reads a batched network and drives it; "
                "its output cannot be one input for every batch element (batch_size=1)"
            )
        out = outputs.get((op, port))
        if out is None:
            return np.broadcast_to(carry, (n, size)).copy()
        return np.concatenate([carry[None], np.asarray(out[: n - 1]).reshape(n - 1, size)])

    def _feed_operators(self, n: int, sources, currents, outputs) -> None:
        """Before the spiking part: the virtual sources' spikes and the operator-driven input
        currents of this chunk."""
        if not n:
            return
        for vname, (op, port) in self.program.operator_sources.items():
            size = sources[vname].shape[1]
            sources[vname] = _spike_values(self._delayed(op, port, n, size, outputs), op, port)
        for (pop, var), feeds in self.program.operator_currents.items():
            size = self.program.populations[pop].size
            for op, port in feeds:
                add = self._delayed(op, port, n, size, outputs).astype(np.float64)
                currents[(pop, var)] = currents[(pop, var)] + add if (pop, var) in currents else add

    def _carry_operators(self, outputs) -> None:
        """After the chunk: keep each feeding output's last step for the next chunk."""
        for key in self._operator_feeds():
            out = outputs.get(key)
            if out is not None and len(out):
                self._operator_carry[key] = np.asarray(out[-1], dtype=np.float64)

    def _operator_probes(self, outputs, t0: int) -> dict[str, np.ndarray]:
        """Recorded operator outputs (``StateProbe(node, port)``), checked to be finite."""
        rec = {}
        for pb in self.net.probes:
            if not isinstance(pb, StateProbe):
                continue
            key = (pb.population, pb.variable)
            if key in outputs:
                values = outputs[key]
                if self.check_finite and values.dtype.kind == "f":
                    bad = ~np.isfinite(values)
                    if bad.any():
                        t, *i = np.argwhere(bad)[0]
                        raise SimulationError(
                            f"{self.backend} {self.net.name}: "
                            f"{self.program.operators[key[0]].where}, output {key[1]!r}, "
                            f"element {tuple(int(x) for x in i)} is {values[bad][0]} at step "
                            f"{t0 + int(t)}"
                        )
                rec[f"{key[0]}.{key[1]}"] = values
        return rec

    # --------------------------------------------------------------- public API
    def run(
        self, steps: int, inputs: dict[str, Any] | None = None, progress: bool = False
    ) -> Probes:
        """Advance ``steps`` time steps; returns the probes recorded in this call.

        ``progress=True`` shows a progress bar (the run is then done in chunks).
        """
        inputs = self._check_inputs(steps, inputs)
        result = Probes()
        chunk = max(1, steps // 50) if progress else max(steps, 1)
        if self._operators_step_locked():
            chunk = 1  # an operator output feeds the network and depends on it: step by step
        with progress_bar(
            total=steps, desc=f"{self.backend} {self.net.name}", disable=not progress
        ) as bar:
            done = 0
            while True:  # at least once: run(0) returns the usual (empty) records
                n = min(chunk, steps - done)
                t0 = self.t
                # spike inputs have time first; a current is (steps, size) or constant (size,)
                sub = {
                    k: (v[done : done + n] if v.ndim >= 2 or "." not in k else v)
                    for k, v in inputs.items()
                }
                sources, currents = self._spike_inputs(n, sub), self._current_inputs(n, sub)
                outputs = self._run_operators(sources, ahead=True)
                self._feed_operators(n, sources, currents, outputs)
                spikes, state, *ev = self._run(n, sources, currents)
                for node in self._spin_nodes:
                    state.update(node.run(n, self.t))
                outputs = self._run_operators({**sources, **spikes}, outputs=outputs)
                self._carry_operators(outputs)
                state.update(self._operator_probes(outputs, t0))
                self.t += n
                result.append(spikes, state, ev[0] if ev else {}, n)
                done += n
                bar.update(n)
                if self.check_finite and n:
                    self._raise_nonfinite(t0, state)
                if done >= steps:
                    break
        self.probes.append(result.spikes, result.state, result.events, steps)
        return result

    def _run(
        self, steps: int, spikes: dict[str, np.ndarray], currents: dict[tuple[str, str], np.ndarray]
    ):
        """Returns (rasters of ``program.spike_probes``, state probes, events of
        ``program.event_probes`` as (steps, neurons) from 0 in this call)."""
        raise NotImplementedError

    def operator(self, name: str) -> Any:
        """The engine of operator node ``name`` on this backend (its registered implementation,
        e.g. to read what a learning operator has learnt)."""
        if name not in self._operators:
            raise SpecError(
                f"operator {name!r} is not a node of this network "
                f"(operators: {', '.join(self._operators) or 'none'})"
            )
        return self._operators[name]

    def reset(self) -> None:
        """Back to the initial state at t = 0 (weights included); recorded probes are cleared."""
        self.probes = Probes()
        self.t = 0
        for node in (*self._spin_nodes, *self._operators.values()):
            node.reset()
        self._operator_carry = {}
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    @property
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """Population -> variable -> values (copies); ``"weights"`` -> projection -> weights in
        the spec's synapse order."""
        raise NotImplementedError


def _host(x: Any) -> np.ndarray:
    """An engine's output as a numpy array (torch tensors are detached and copied)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _spike_values(x: np.ndarray, op: str, port: str) -> np.ndarray:
    """A spike output as bools; an implementation that emits other values is an error."""
    a = np.asarray(x)
    if a.dtype.kind != "b" and a.size and not ((a == 0) | (a == 1)).all():
        raise SimulationError(f"operator {op!r}: spike output {port!r} holds values other than 0/1")
    return a.astype(bool)
