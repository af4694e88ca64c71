"""Importing neuromem's plotting never switches the user's matplotlib backend (a notebook's
inline figures would vanish), and its figures still render without a display."""

from __future__ import annotations

import subprocess
import sys


def test_import_keeps_the_backend_and_figures_render(tmp_path):
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import neuromem.plotting as p, numpy as np; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        f"p.raster_figure([('a', np.eye(5, dtype=bool))], 't', {str(tmp_path / 'r.png')!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "r.png").stat().st_size > 1000
