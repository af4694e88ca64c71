"""The compile report: what a network needs on a target, in text and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CompileReport:
    """Per population and projection: cores, quantisation error, delays, plasticity, host work.

    Attributes
    ----------
    target, title : str
        The profile's target and description.
    dt : float
        Time step of the network (ms).
    populations, projections : list of dict
        One row per element (see ``neuromem.hardware.compile``).
    totals : dict
        Cores and chips used.
    host : list of str
        Elements that would have to run on the host computer.
    findings : list of dict
        Each with ``element``, ``target``, ``limit``, ``message`` and ``severity``
        (``refuse``: cannot be compiled; ``warn``: compiled with a loss the user should see).
    differences : list of dict
        Semantic differences between the spec and the target (``element``, ``difference``).
    placements : dict or None
        The target toolchain's own mapping where one was run (e.g. sPyNNaker's virtual board):
        ``source`` and, per population, ``cores`` as (x, y, p) and ``n_cores``.
    """

    target: str
    title: str
    dt: float
    populations: list[dict[str, Any]] = field(default_factory=list)
    projections: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    host: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    placements: dict[str, Any] | None = None

    @property
    def refusals(self) -> list[dict[str, Any]]:
        """Findings that stop the compilation."""
        return [f for f in self.findings if f["severity"] == "refuse"]

    @property
    def ok(self) -> bool:
        """True when nothing is refused."""
        return not self.refusals

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def to_text(self) -> str:
        """A plain-text table for people."""
        lines = [
            f"neuromem hardware report: {self.title} (target {self.target}), dt = {self.dt} ms"
        ]
        lines.append("")
        lines.append(f"{'population':<20} {'size':>7} {'model':<14} {'cores':>5}  status")
        for p in self.populations:
            lines.append(
                f"{p['name']:<20} {p['size']:>7} {p['model']:<14} {p['cores']!s:>5}  "
                f"{'ok' if p['supported'] else 'UNSUPPORTED'}"
            )
            for d in p.get("decays", []):
                lines.append(
                    f"{'':<20} decay {d['parameter']}: factor error <= {d['max_factor_error']:.2e}"
                    f", tau relative error <= {d['max_tau_relative_error']:.2e}"
                )
        lines.append("")
        lines.append(
            f"{'projection':<20} {'synapses':>8} {'delays':>9} {'in range':>8} {'plasticity':<28}"
            " weights (max err / rms err / zeroed)"
        )
        for p in self.projections:
            q = p.get("weights")
            wq = (
                f"{q['max_abs_error']:.3g} / {q['rms_error']:.3g} / {q['zeroed']}"
                f" (2^{q['exponent']})"
                if q
                else "float"
            )
            plast = p["plasticity"] or "static"
            if p["plasticity"]:
                plast += " (on chip)" if p["plasticity_supported"] else " (HOST)"
            lines.append(
                f"{p['name']:<20} {p['synapses']:>8} {p['delay_min']:>4}-{p['delay_max']:<4} "
                f"{'yes' if p['delays_in_range'] else 'NO':>8} {plast:<28} {wq}"
            )
        lines.append("")
        lines.append(f"totals: {self.totals}")
        if self.placements:
            lines.append(f"placements ({self.placements.get('source', 'toolchain')}):")
            for name, p in self.placements.get("populations", {}).items():
                where = ", ".join(f"({c[0]}, {c[1]}, {c[2]})" for c in p.get("cores", []))
                lines.append(f"  {name:<20} {p.get('n_cores', '?')} core(s): {where}")
        if self.host:
            lines.append("on the host: " + ", ".join(self.host))
        for f in self.findings:
            lines.append(f"{f['severity'].upper()}: {f['message']}")
        for d in self.differences:
            lines.append(f"DIFFERENCE: {d['element']}: {d['difference']}")
        lines.append(f"status: {'OK' if self.ok else 'REFUSED'}")
        return "\n".join(lines)

    def write(self, stem: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.txt``; returns both paths."""
        stem = Path(stem)
        js, txt = stem.with_suffix(".json"), stem.with_suffix(".txt")
        js.write_text(json.dumps(self.to_dict(), indent=1, default=float) + "\n")
        txt.write_text(self.to_text() + "\n")
        return js, txt
