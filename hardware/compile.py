"""``compile(net, target)``: quantise -> check the target's constraints -> emit -> report.

The checks here are the ones every target shares and that a profile states as data (neuron
models, plasticity rules, time step, delay range, fan-in, weight precision, neurons per core).
Target modules (``lava``, ``pynn``, ``nir``) add what only they know: the elements they cannot
express and the semantic differences of their simulator, and they emit.
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..spec import Network
from .nodes import describe, operator_element
from .profile import HardwareProfile, load_profile
from .quantise import quantise_decay, quantise_weights, weight_exponent
from .report import CompileReport


class HardwareError(SpecError):
    """A network cannot be compiled for a target; ``report`` holds every reason."""

    def __init__(self, message: str, report: CompileReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class HardwareCompilation:
    """What ``compile`` returns: the report, and the emitted artifact (None when not emitted)."""

    report: CompileReport
    artifact: Any = None


def _finding(element: str, target: str, limit: str, message: str, severity: str = "refuse"):
    return {
        "element": element,
        "target": target,
        "limit": limit,
        "message": message,
        "severity": severity,
    }


def _per_synapse(value: Any, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def _param(pop, name: str) -> np.ndarray:
    value = pop.params.get(name, pop.model.params[name][1])
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (pop.size,))


def _time_constants(pop) -> list[str]:
    """Parameters in ms named tau*, except refractory periods."""
    return [
        k
        for k, (unit, _) in pop.model.params.items()
        if unit == "ms" and k.startswith("tau") and "refrac" not in k
    ]


def _check_network(net: Network, prof: HardwareProfile, report: CompileReport) -> None:
    t = prof.target
    dt = net.discretization.dt
    allowed = prof.timestep.get("allowed_ms")
    if allowed and not any(math.isclose(dt, a) for a in allowed):
        report.findings.append(
            _finding(
                f"network '{net.name}'",
                t,
                f"time step in {allowed} ms",
                f"network '{net.name}': dt = {dt} ms is not a time step {t} runs "
                f"(allowed: {allowed} ms)",
            )
        )
    for node in (*net.spins, *net.operators):
        report.findings.append(
            _finding(
                operator_element(node),
                t,
                f"neuron models {prof.neuron_models}",
                f"{describe(node)}: {t} runs only the neuron models "
                f"{', '.join(prof.neuron_models)}",
            )
        )
    for c in net.currents:
        values = np.asarray(c.values)
        if values.ndim == 2:
            report.host.append(f"current input to '{c.population}'")
            report.findings.append(
                _finding(
                    f"current input to '{c.population}'",
                    t,
                    "constant bias only",
                    f"current input to population '{c.population}': {t} takes a constant bias; "
                    f"a time-varying current ({values.shape[0]} steps) is streamed from the host",
                )
            )


def _check_populations(net: Network, prof: HardwareProfile, report: CompileReport) -> None:
    t, dt = prof.target, net.discretization.dt
    for pop in net.populations:
        supported = pop.model.name in prof.neuron_models
        # spike sources are host-fed on Loihi, but occupy cores on SpiNNaker
        on_cores = not pop.model.spike_source or prof.raw.get("spike_sources_use_cores", False)
        cores = (
            math.ceil(pop.size / prof.neurons_per_core)
            if prof.neurons_per_core is not None and on_cores
            else None
        )
        row: dict[str, Any] = {
            "name": pop.name,
            "size": pop.size,
            "model": pop.model.name,
            "supported": supported,
            "cores": cores,
            "decays": [],
        }
        if not supported:
            report.findings.append(
                _finding(
                    f"population '{pop.name}'",
                    t,
                    f"neuron models {prof.neuron_models}",
                    f"population '{pop.name}': neuron model {pop.model.name!r} is not one {t} runs "
                    f"({', '.join(prof.neuron_models)})",
                )
            )
        elif prof.decay is not None:
            for name in _time_constants(pop):
                q = quantise_decay(name, _param(pop, name), dt, prof.decay["bits"])
                row["decays"].append(q.__dict__)
                if not np.isfinite(q.max_tau_relative_error):
                    report.findings.append(
                        _finding(
                            f"population '{pop.name}'",
                            t,
                            f"{prof.decay['bits']}-bit decay",
                            f"population '{pop.name}': {name} gives a per-step decay that "
                            f"rounds to 0 or 1 in {prof.decay['bits']} bits at dt = {dt} ms",
                        )
                    )
        report.populations.append(row)


def _weight_groups(net: Network, prof: HardwareProfile) -> dict[str, float]:
    """Largest weight magnitude per scaling group (plastic projections count with w_max)."""
    largest: dict[str, float] = defaultdict(float)
    for proj in net.projections:
        w = np.abs(_per_synapse(proj.weight, len(proj.pre_index)))
        top = float(w.max()) if w.size else 0.0
        if proj.plasticity is not None and "w_max" in proj.plasticity.params:
            w_max = proj.plasticity_params.get("w_max", proj.plasticity.params["w_max"][1])
            top = max(top, abs(float(w_max)))
        largest[_group(proj, prof)] = max(largest[_group(proj, prof)], top)
    return largest


def _group(proj, prof: HardwareProfile) -> str:
    if prof.weights and prof.weights["scaling"] == "power_of_two_per_post_population_and_port":
        return f"{proj.post}:{proj.port}"
    return proj.name


def _check_projections(
    net: Network, prof: HardwareProfile, report: CompileReport, plasticity: str
) -> None:
    t = prof.target
    lo, hi = prof.delay_steps["min"], prof.delay_steps["max"]
    fan_in: dict[str, np.ndarray] = {p.name: np.zeros(p.size, np.int64) for p in net.populations}
    largest = _weight_groups(net, prof) if prof.weights else {}
    for proj in net.projections:
        n = len(proj.pre_index)
        delays = _per_synapse(proj.delay, n)
        d_min = int(delays.min()) if n else 0
        d_max = int(delays.max()) if n else 0
        in_range = n == 0 or (d_min >= lo and (hi is None or d_max <= hi))
        rule = proj.plasticity.name if proj.plasticity is not None else None
        approximate = prof.plasticity_approximate.get(rule) if rule else None
        rule_ok = rule is None or rule in prof.plasticity or approximate is not None
        row: dict[str, Any] = {
            "name": proj.name,
            "pre": proj.pre,
            "post": proj.post,
            "synapses": n,
            "delay_min": d_min,
            "delay_max": d_max,
            "delays_in_range": in_range,
            "plasticity": rule,
            "plasticity_supported": rule_ok,
            "weights": None,
        }
        np.add.at(fan_in[proj.post], proj.post_index, 1)
        if approximate:
            report.differences.append(
                {"element": f"projection '{proj.name}'", "difference": approximate}
            )
        if not in_range:
            report.findings.append(
                _finding(
                    f"projection '{proj.name}'",
                    t,
                    f"delays {lo}..{hi} steps",
                    f"projection '{proj.name}': delays {d_min}..{d_max} steps, {t} holds "
                    f"{lo}..{hi} steps",
                )
            )
        if not rule_ok:
            report.host.append(f"plasticity of projection '{proj.name}'")
            on_host = plasticity == "host"
            report.findings.append(
                _finding(
                    f"projection '{proj.name}'",
                    t,
                    f"plasticity rules {prof.plasticity}",
                    f"projection '{proj.name}': plasticity rule {rule!r} does not run on {t}"
                    + (", it runs on the host" if on_host else "")
                    + f" ({prof.plasticity_note})",
                    severity="warn" if on_host else "refuse",
                )
            )
        if prof.weights and n:
            _quantise_projection(proj, prof, largest[_group(proj, prof)], row, report)
        row_limit = prof.raw.get("max_plastic_row_synapses")
        if rule is not None and row_limit and prof.neurons_per_core and n:
            # one row per pre neuron and post core: its synapse count is what the core stores
            core = proj.post_index // prof.neurons_per_core
            _, counts = np.unique(proj.pre_index * (core.max() + 1) + core, return_counts=True)
            if counts.max() > row_limit:
                report.findings.append(
                    _finding(
                        f"projection '{proj.name}'",
                        t,
                        f"{row_limit} synapses per plastic row",
                        f"projection '{proj.name}': a pre neuron has {int(counts.max())} plastic "
                        f"synapses onto one core, {t} holds {row_limit} per row",
                    )
                )
        report.projections.append(row)
    if prof.max_fan_in is not None:
        for pop in net.populations:
            worst = int(fan_in[pop.name].max()) if pop.size else 0
            if worst > prof.max_fan_in:
                report.findings.append(
                    _finding(
                        f"population '{pop.name}'",
                        t,
                        f"fan-in {prof.max_fan_in}",
                        f"population '{pop.name}': a neuron receives {worst} synapses, {t} allows "
                        f"{prof.max_fan_in}",
                    )
                )


def _quantise_projection(proj, prof: HardwareProfile, largest: float, row, report) -> None:
    t = prof.target
    bits, signed = prof.weights["bits"], prof.weights["signed"]
    w = _per_synapse(proj.weight, len(proj.pre_index))
    if not signed and (w < 0).any():
        report.findings.append(
            _finding(
                f"projection '{proj.name}'",
                t,
                "unsigned weights",
                f"projection '{proj.name}': negative weights, {t} stores unsigned weights "
                f"(use the inhibitory port with positive weights)",
            )
        )
        return
    e_lo, e_hi = prof.weights.get("exponent_range", (-64, 64))
    exponent = min(max(weight_exponent(largest, bits, signed), e_lo), e_hi)
    q = quantise_weights(w, bits, signed, exponent)
    row["weights"] = {
        "bits": bits,
        "exponent": q.exponent,
        "max_abs_error": q.max_abs_error,
        "rms_error": q.rms_error,
        "zeroed": q.zeroed,
    }
    nonzero = int(np.count_nonzero(w))
    if nonzero and q.zeroed == nonzero:
        report.findings.append(
            _finding(
                f"projection '{proj.name}'",
                t,
                f"{bits}-bit weights with exponent {q.exponent}",
                f"projection '{proj.name}': all {nonzero} nonzero weights quantise to zero with "
                f"{bits}-bit weights (step 2^{q.exponent} = {2.0**q.exponent:.3g}, largest "
                f"|w| = {float(np.abs(w).max()):.3g})",
            )
        )
    elif q.zeroed:
        report.findings.append(
            _finding(
                f"projection '{proj.name}'",
                t,
                f"{bits}-bit weights",
                f"projection '{proj.name}': {q.zeroed} of {nonzero} nonzero weights quantise to "
                f"zero",
                severity="warn",
            )
        )


def _module(name: str):
    return importlib.import_module(f"{__package__}.{name}")


def _pick(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: options[k] for k in names if k in options}


@dataclass(frozen=True)
class _Target:
    """A target module's checks and emitter as ``compile`` calls them: ``(net, profile,
    options)``, where ``options`` are compile's keyword arguments for the emitter."""

    unsupported: Any
    differences: Any
    emit: Any


#: A profile's ``emitter`` -> its module's entry points. Lava's take the precision and the
#: plasticity mode; PyNN's take the simulator (sPyNNaker for SpiNNaker); NIR's nothing.
TARGETS: dict[str, _Target] = {
    "lava": _Target(
        lambda net, prof, o: _module("lava").unsupported_for_profile(
            net, prof, **_pick(o, "precision", "plasticity")
        ),
        lambda net, prof, o: _module("lava").differences_for_profile(
            net, prof, **_pick(o, "precision", "plasticity")
        ),
        lambda net, prof, o: _module("lava").emit_for_profile(net, prof, **o),
    ),
    "pynn": _Target(
        lambda net, prof, o: _module("pynn").unsupported(net, o.get("simulator", "spiNNaker")),
        lambda net, prof, o: _module("pynn").differences(net, o.get("simulator", "spiNNaker")),
        lambda net, prof, o: _module("pynn").emit_script(net, **o),
    ),
    "nir": _Target(
        lambda net, prof, o: _module("nir").unsupported(net, prof),
        lambda net, prof, o: _module("nir").semantic_differences(net, prof),
        lambda net, prof, o: _module("nir").to_nir(net, prof, **o),
    ),
}


def compile(  # noqa: A001 - the pipeline's name, as in neuromem.compile
    net: Network,
    target: str | HardwareProfile,
    *,
    strict: bool = True,
    emit: bool = True,
    plasticity: str = "refuse",
    **emit_options: Any,
) -> HardwareCompilation:
    """Compile ``net`` for a hardware target: quantise, check, emit, report.

    Parameters
    ----------
    net : Network
        The network.
    target : str or HardwareProfile
        A profile name (``neuromem.hardware.available_targets()``) or a loaded profile.
    strict : bool
        Raise ``HardwareError`` when anything is refused (the default). With ``False`` the
        report is returned with the refusals listed and nothing emitted.
    emit : bool
        Emit the target's artifact (Lava processes, a PyNN script, a NIR graph).
    plasticity : {"refuse", "host"}
        What to do with plasticity the target cannot run: refuse it, or (where the emitter
        supports it, e.g. Lava in floating point) update those weights on the host between
        steps, listed in the report's ``host``.
    **emit_options
        Passed to the target's emitter.

    Returns
    -------
    HardwareCompilation
        ``report`` (``CompileReport``) and ``artifact``.

    Raises
    ------
    HardwareError
        Some element cannot run on the target; the message lists each with its limit.
    """
    if plasticity not in ("refuse", "host"):
        raise SpecError(f"hardware compile: plasticity={plasticity!r}, expected 'refuse' or 'host'")
    prof = target if isinstance(target, HardwareProfile) else load_profile(target)
    if plasticity == "host":
        emit_options["plasticity"] = "host"
    report = CompileReport(target=prof.target, title=prof.title, dt=net.discretization.dt)
    _check_network(net, prof, report)
    _check_populations(net, prof, report)
    _check_projections(net, prof, report, plasticity)
    cores = [p["cores"] for p in report.populations if p["cores"] is not None]
    report.totals = {
        "neurons": int(sum(p.size for p in net.populations if not p.model.spike_source)),
        "synapses": int(sum(len(p.pre_index) for p in net.projections)),
        "cores": int(sum(cores)) if prof.neurons_per_core else None,
        "chips": (
            math.ceil(sum(cores) / prof.cores_per_chip) if prof.cores_per_chip and cores else None
        ),
    }
    limit = prof.raw.get("routing_entries_per_chip")
    if limit and prof.neurons_per_core:
        # one routing key per source core (sPyNNaker's key-per-vertex allocation); a chip
        # that every route crosses holds them all: an upper bound per chip
        senders = {p.pre for p in net.projections}
        entries = sum(r["cores"] or 0 for r in report.populations if r["name"] in senders)
        report.totals["routing_entries_estimate"] = int(entries)
        if entries > limit:
            report.findings.append(
                _finding(
                    f"network '{net.name}'",
                    prof.target,
                    f"{limit} routing entries per chip",
                    f"network '{net.name}': up to {entries} routing entries on one chip, "
                    f"{prof.target} holds {limit} (the mapper may compress or spread them)",
                    severity="warn",
                )
            )
    tgt = TARGETS.get(prof.emitter) if prof.emitter else None
    if tgt is not None:
        known = {f["message"] for f in report.findings}
        for f in tgt.unsupported(net, prof, emit_options):
            if f["message"] not in known:
                report.findings.append({"severity": "refuse", **f})
        report.differences.extend(tgt.differences(net, prof, emit_options))
    if not report.ok:
        if strict:
            reasons = "\n  ".join(f["message"] for f in report.refusals)
            raise HardwareError(
                f"network '{net.name}' cannot be compiled for {prof.target}:\n  {reasons}", report
            )
        return HardwareCompilation(report)
    artifact = None
    if emit:
        if tgt is None:
            raise HardwareError(
                f"network '{net.name}': target {prof.target} has no emitter in neuromem "
                f"(report only; use emit=False)",
                report,
            )
        artifact = tgt.emit(net, prof, emit_options)
    return HardwareCompilation(report, artifact)
