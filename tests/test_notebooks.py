"""Every notebook in docs/notebooks/ runs headless from top to bottom (issue 17).

Each notebook is executed with nbclient in a fresh temporary working directory (nothing is
written into the checkout), by an IPython kernel of this test's own Python (a kernelspec in
the temporary directory that points at ``sys.executable``; nothing is registered globally), with
``NEUROMEM_PROGRESS=0`` and ``MPLBACKEND=Agg``. A failing cell fails the test with the
notebook's name, the cell's number and source, and the error. The notebooks are stored without
outputs (the test executes them), which the last test checks.

Needs the ``dev`` (or ``notebook``) extra: nbclient, nbformat, ipykernel; skipped with the
reason without them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
KERNEL = "python3"  # the name the notebooks' metadata give; resolved to this Python below
CELL_TIMEOUT_S = 300


def _need(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module, reason=f"{module} is not installed (pip install '.[dev]')")


def _kernel_manager(tmp: Path):
    """A kernel manager whose only kernelspec, ``python3``, runs ipykernel on sys.executable."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = tmp / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "neuromem tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    # unix sockets beside the connection file (over TCP ipykernel warns of no encryption),
    # where the platform has them and the socket paths fit (about 100 characters at most)
    ipc = sys.platform.startswith("linux") and len(str(tmp / "connection-ipc-99")) < 100
    return AsyncKernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
        connection_file=str(tmp / "connection.json"),
        transport="ipc" if ipc else "tcp",
    )


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in docs/notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path):
    _need("nbformat", "nbclient", "ipykernel", "jupyter_client")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    # the kernel must be this Python's (this venv's), whatever kernelspecs the machine has
    check = f"import sys\nassert sys.prefix == {sys.prefix!r}, (sys.prefix, sys.executable)"
    nb.cells.append(nbformat.v4.new_code_cell(check))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(
        os.environ, NEUROMEM_PROGRESS="0", MPLBACKEND="Agg", IPYTHONDIR=str(tmp_path / "ipython")
    )
    current = {"cell": -1}

    def on_cell_start(cell, cell_index):
        current["cell"] = cell_index

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        km=_kernel_manager(tmp_path),
        resources={"metadata": {"path": str(work)}},
        on_cell_start=on_cell_start,
    )
    t0 = time.perf_counter()
    try:
        # cleanup_kc: shut the kernel down afterwards (nbclient leaves a given km's running)
        client.execute(env=env, cleanup_kc=True)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        i = current["cell"]
        source = nb.cells[i].source if i >= 0 else ""
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no terminal colours
        pytest.fail(
            f"{path.name}: cell {i} (0-based) failed: {type(exc).__name__}\n"
            f"--- cell {i} ---\n{source}\n--- error ---\n{error}",
            pytrace=False,
        )
    print(f"{path.name}: executed in {time.perf_counter() - t0:.1f} s")


def test_notebooks_are_valid_and_stored_without_outputs():
    _need("nbformat")
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL, path.name
        assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name}: starts with a title"
        assert nb.cells[-1].cell_type == "markdown", f"{path.name}: ends with a summary"
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name}: cell {i} is stored with outputs (clear them: the test runs it)"
                )
