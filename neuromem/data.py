"""Data directory resolution and checksum-verified loaders.

The data directory is an argument or ``$NEUROMEM_DATA``; files are verified against the
SHA-256 sums below before use. Nothing here knows where a particular machine keeps its data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

#: Relative path -> SHA-256 of the file as published.
_CA3 = "ca3/exp1_learn_recall_forget.json", "ca3/exp2_stress_testbench.json"
_ELM = "elm/num_memory_1_", "elm/num_memory_20_"
CHECKSUMS = {
    _CA3[0]: "0d1cc1d7636013e86f3eb4f385bd0b7079546559021cbf7f708e090f74b3f702",
    _CA3[1]: "452e0835267ed3fdafec5bbac691d8bcba359a28cd9d25980c950b3093444e44",
    _ELM[0] + "config.json": "c2f300b6c65564c0776a59d509b4d68489233db7ca1720443ca5231348523cfc",
    _ELM[0] + "golden.npz": "94c576ea0e8f5daebd9cba58b5c5e3d23f21fe92c14ef87f56408ce253c2f4eb",
    _ELM[0] + "weights.npz": "7d8796329b46fe234d0baba18fbd189800baa8da90d373ffed34099ce6abe77e",
    _ELM[1] + "config.json": "958a2393d87880c5061dfdfa915caaa8aaa53e004410a86e7ad3a24dda9bc3cb",
    _ELM[1] + "golden.npz": "416829640d62d8a0c582da024da896a427fb786979222bd7e3409635bb25ec65",
    _ELM[1] + "weights.npz": "55dd8803bb8f26834841a32a0cbc5af21968014bd330f8a56d86156494b97b2f",
}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$NEUROMEM_DATA``."""
    p = path if path is not None else os.environ.get("NEUROMEM_DATA")
    if not p:
        raise DataError("no data directory: pass one or set NEUROMEM_DATA")
    p = Path(p)
    if not p.is_dir():
        raise DataError(f"data directory {p} does not exist")
    return p


def verified_path(relative: str, root: str | os.PathLike | None = None) -> Path:
    """Path of a known data file after checking its SHA-256."""
    if relative not in CHECKSUMS:
        raise DataError(f"unknown data file {relative!r}; known: {', '.join(CHECKSUMS)}")
    path = data_dir(root) / relative
    if not path.is_file():
        raise DataError(
            f"data file {path} is missing: it is not downloadable (the authors' recordings "
            "and weights, converted to plain JSON/npz for neuromem, come with the project's "
            "data directory; set NEUROMEM_DATA to it)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CHECKSUMS[relative]:
        raise DataError(
            f"data file {path} has SHA-256 {digest}, expected "
            f"{CHECKSUMS[relative]} (corrupt or a different version)"
        )
    return path


def load_ca3_recording(name: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """One of the authors' CA3 recordings as bool rasters.

    Returns
    -------
    dict
        ``n_cues``, ``n_bits``, ``steps`` and ``spikes``: population name -> bool array
        (steps, size) with the sizes of the architecture (INcue/OUTcue n, INcont/OUTcont m, ...).
    """
    path = verified_path(f"ca3/{name}.json", root)
    doc = json.loads(path.read_text())
    n, m, steps = doc["n_cues"], doc["n_content_bits"], doc["duration_steps"]
    sizes = {
        "INcue": n,
        "OUTcue": n,
        "CA3cueCueRecall": n,
        "CA3cueContRecall": n,
        "CA3MergeCue": n,
        "CA3contCondInt": 1,
    }
    spikes = {}
    for pop, events in doc["spikes"].items():
        r = np.zeros((steps, sizes.get(pop, m)), dtype=bool)
        for t, idx in events:
            r[t, idx] = True
        spikes[pop] = r
    return {"n_cues": n, "n_bits": m, "steps": steps, "spikes": spikes, "source": doc["source"]}
