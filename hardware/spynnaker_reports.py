"""Map a network on sPyNNaker's virtual board and read its placement and routing reports.

:func:`map_on_virtual_board` emits the PyNN script (:func:`neuromem.hardware.pynn.emit_script`),
runs it with ``pyNN.spiNNaker`` in a subprocess whose ``HOME`` is a temporary folder holding a
``.spynnaker.cfg`` with ``virtual_board = True`` (the user's own HOME and cfg are never read or
written), and parses the reports sPyNNaker writes when mapping: placement, partitioning and
routing. A virtual board maps (partition, place, route, compress, generate data) but runs
nothing, so no spikes come back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from neuromem.spec import Network

from .pynn import emit_script

#: cfg for the temporary HOME: a SpiNN-5 (48-chip) virtual board and the Debug report set,
#: without the reports that need graphviz or read memory back.
_CFG = """\
[Machine]
virtual_board = True
version = {version}

[Mode]
mode = Debug

[Reports]
default_report_file_path = {reports}
write_network_graph = False
write_memory_map_report = False
max_reports_kept = 2
"""

_VERTEX = re.compile(r"^\*\*\*\* Vertex: '(?P<label>.*)'$")
_MODEL = re.compile(r"^Model: (?P<model>.*)$")
_SLICE = re.compile(
    r"^\s+Slice \((?P<lo>\d+):(?P<hi>\d+)\) on core \((?P<x>\d+), (?P<y>\d+), (?P<p>\d+)\)"
)
_ROUTER = re.compile(r"^Router contains (?P<n>\d+) entries")


def spynnaker_version() -> str | None:
    """Installed sPyNNaker version, or None when it is not importable."""
    try:
        from importlib.metadata import version

        import spynnaker  # noqa: F401

        return version("sPyNNaker")
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def parse_reports(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Parse one sPyNNaker ``run_N`` report folder.

    Returns
    -------
    dict
        ``populations``: label -> {``model``, ``cores`` [(x, y, p, lo, hi)], ``n_cores``,
        ``chips`` [(x, y)], ``n_chips``}, for every application vertex (populations, and
        delay extensions when sPyNNaker adds them);
        ``routing``: {``uncompressed`` and ``compressed``: {``per_chip`` {"x,y": entries},
        ``total``, ``max_per_chip``}, ``chips_with_tables``};
        ``cores_used`` and ``chips_used`` over the application vertices.
    """
    run_dir = Path(run_dir)
    pops: dict[str, dict[str, Any]] = {}
    cur = None
    for line in (run_dir / "placement_by_vertex_using_graph.rpt").read_text().splitlines():
        if m := _VERTEX.match(line):
            cur = pops.setdefault(m["label"], {"model": None, "cores": []})
        elif cur is not None and (m := _MODEL.match(line)):
            cur["model"] = m["model"]
        elif cur is not None and (m := _SLICE.match(line)):
            cur["cores"].append(tuple(int(m[k]) for k in ("x", "y", "p", "lo", "hi")))
    for v in pops.values():
        v["n_cores"] = len(v["cores"])
        v["chips"] = sorted({(c[0], c[1]) for c in v["cores"]})
        v["n_chips"] = len(v["chips"])
    uncompressed = {
        f"{t['x']},{t['y']}": len(t["entries"])
        for t in json.loads((run_dir / "json_files" / "routing_tables.json").read_text())
    }
    compressed = {}
    for f in sorted((run_dir / "compressed_routing_tables_generated").glob("routing_table_*.rpt")):
        x, y = f.stem.split("_")[-2:]
        m = _ROUTER.match(f.read_text().splitlines()[0])
        compressed[f"{x},{y}"] = int(m["n"]) if m else None

    def summary(d: dict[str, int | None]) -> dict[str, Any]:
        vals = [v for v in d.values() if v is not None]
        return {
            "per_chip": d,
            "total": sum(vals),
            "max_per_chip": max(vals, default=0),
        }

    return {
        "populations": pops,
        "cores_used": sum(v["n_cores"] for v in pops.values()),
        "chips_used": len({c for v in pops.values() for c in v["chips"]}),
        "routing": {
            "uncompressed": summary(uncompressed),
            "compressed": summary(compressed),
            "chips_with_tables": len(uncompressed),
        },
    }


def map_on_virtual_board(
    net: Network,
    steps: int,
    inputs: dict[str, Any] | None = None,
    workdir: str | os.PathLike | None = None,
    board_version: int = 5,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Map ``net`` with sPyNNaker on a virtual SpiNNaker board; return the parsed reports.

    Parameters
    ----------
    net : Network
    steps : int
        Run length (steps) the script asks for (spike sources are materialised up to it).
    inputs : dict, optional
        Run-time spike rasters of spike sources.
    workdir : path-like, optional
        Folder for the script, the temporary HOME and the reports (kept); default a temporary
        folder that is removed afterwards.
    board_version : int
        sPyNNaker machine version (5: a 48-chip SpiNN-5 board).
    timeout : float
        Seconds for the sPyNNaker subprocess.

    Returns
    -------
    dict
        :func:`parse_reports` of the run, plus ``spynnaker_version`` and ``board_version``.
        Raises ``RuntimeError`` with sPyNNaker's error output when mapping fails.
    """
    if spynnaker_version() is None:
        raise RuntimeError("sPyNNaker is not installed (pip install 'sPyNNaker==1!7.4.1')")
    tmp = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="nm_spinn_"))
    try:
        home = tmp / "home"
        home.mkdir(parents=True, exist_ok=True)
        # sPyNNaker writes <default_report_file_path>/reports/<timestamp>/run_<n>/
        (home / ".spynnaker.cfg").write_text(_CFG.format(version=board_version, reports=tmp))
        reports = tmp / "reports"
        script = tmp / f"{net.name}_spinnaker.py"
        emit_script(net, script, steps, inputs, simulator="spiNNaker")
        env = {**os.environ, "HOME": str(home), "NEUROMEM_PYNN_NO_RESULTS": "1"}
        proc = subprocess.run(
            [sys.executable, str(script), "spiNNaker"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sPyNNaker mapping failed:\n{proc.stderr[-4000:]}")
        runs = sorted(reports.glob("*/run_*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise RuntimeError(f"sPyNNaker wrote no report folder under {reports}")
        out = parse_reports(runs[-1])
        out.update(spynnaker_version=spynnaker_version(), board_version=board_version)
        return out
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["map_on_virtual_board", "parse_reports", "spynnaker_version"]
