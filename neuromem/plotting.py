"""Raster plots. Figures are made as ``matplotlib.figure.Figure`` objects, without pyplot, so
they need no display and importing this module never changes the user's matplotlib backend
(a library that called ``matplotlib.use`` would stop a notebook's inline figures)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def raster_panel(
    ax, raster: np.ndarray, label: str, color: str = "k", marker: str = "|", size: float = 30
) -> None:
    """Draw one population's bool raster (steps, neurons) as spike ticks."""
    steps, neurons = np.nonzero(raster)
    ax.scatter(steps, neurons, marker=marker, s=size, c=color, linewidths=1)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    ax.set_ylim(-0.5, raster.shape[1] - 0.5)
    ax.tick_params(labelsize=7)


def raster_figure(
    panels: Sequence[tuple[str, np.ndarray] | tuple[str, np.ndarray, np.ndarray]],
    title: str,
    path: str,
    xlim: tuple[int, int] | None = None,
    highlight: Sequence[tuple[int, int]] = (),
) -> None:
    """Stack raster panels. A panel with two rasters overlays ours (dots) on a reference
    (grey ticks) so that agreement reads as dots inside ticks; ``highlight`` shades the step
    ranges ``[start, stop)`` in every panel (e.g. operations where the two differ)."""
    fig = Figure(figsize=(12, 0.55 * sum(max(2, p[1].shape[1] ** 0.5) for p in panels) + 1))
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, panel in zip(np.atleast_1d(axes), panels, strict=True):
        if len(panel) == 3:
            raster_panel(ax, panel[2], "", color="0.6", marker="|", size=60)
            raster_panel(ax, panel[1], panel[0], color="tab:red", marker=".", size=8)
        else:
            raster_panel(ax, panel[1], panel[0])
        for start, stop in highlight:
            ax.axvspan(start - 0.5, stop - 0.5, color="gold", alpha=0.35, lw=0, zorder=0)
        if xlim:
            ax.set_xlim(*xlim)
    np.atleast_1d(axes)[-1].set_xlabel("time step (1 ms)")
    fig.suptitle(title, fontsize=10)
    lines = title.count("\n") + 1  # keep the panels below the (possibly two-line) title
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.2 + 0.18 * lines) / fig.get_figheight()))
    fig.savefig(path, dpi=110)
