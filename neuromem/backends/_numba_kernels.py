"""Network-independent numba kernels (compiled once, cached on disk, shared by every network)."""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def deliver(var, ring, slot, scale):
    """Events due in ring-buffer ``slot`` enter a port variable (times the port scale)."""
    for i in range(var.shape[0]):
        var[i] += ring[slot, i] * scale[i]
        ring[slot, i] = 0.0


@numba.njit(cache=True, nogil=True)
def copy_source(spk, src, step):
    """A spike source's spikes of this step."""
    for i in range(spk.shape[0]):
        spk[i] = src[step, i]


@numba.njit(cache=True, nogil=True)
def propagate(spk, indptr, post, delay, w, ring, t):
    """Event-driven CSR propagation: each spike adds its row's weights at slot t + delay."""
    n_slots = ring.shape[0]
    for i in range(spk.shape[0]):
        if spk[i]:
            for k in range(indptr[i], indptr[i + 1]):
                ring[(t + delay[k]) % n_slots, post[k]] += w[k]


@numba.njit(cache=True, nogil=True)
def record_spikes(rec, step, spk):
    for i in range(spk.shape[0]):
        rec[step, i] = spk[i]


@numba.njit(cache=True, nogil=True)
def record_state(data, step, var, idx):
    for m in range(idx.shape[0]):
        data[step, m] = var[idx[m]]
