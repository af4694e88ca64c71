"""Network-independent numba kernels (compiled once, cached on disk, shared by every network)."""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic, overload


@numba.njit(cache=True, nogil=True)
def record_state(data, step, var, idx):
    for m in range(idx.shape[0]):
        data[step, m] = var[idx[m]]


# ------------------------------------------------------------------ spike lists (the driver's)
# The driver keeps the spikes of the current step as an ascending list of global indices (as
# Brian2 does), so propagation and recording cost O(spikes), not O(neurons), per step.
@numba.njit(cache=True, nogil=True, inline="always")
def _scan_bytes(spk, lo, hi, spikes, n):
    for k in range(lo, hi):
        if spk[k]:
            spikes[n] = k
            n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _scan_word(word, base, spikes, n):
    """Append the set bytes of a 64-bit word of flags (each byte 0 or 1), lowest first."""
    while word != 0:
        spikes[n] = base + (trailing_zeros(word) >> 3)
        n += 1
        word &= word - np.uint64(1)
    return n


@numba.njit(cache=True, nogil=True)
def gather_spikes(spk, words, lo, hi, spikes, n):
    """Append the indices in [lo, hi) where ``spk`` is set to ``spikes[n:]`` (ascending) and
    return the new count. ``words`` is ``spk.view(np.uint64)`` (made by the caller: a view in
    the kernel costs compile time), so ``spk``'s length must be a multiple of 8: eight words
    (64 neurons) are OR-ed per test, so a silent block costs ~10 instructions and a spike a
    few more (its byte found by counting trailing zero bits)."""
    w, w_hi = (lo + 7) >> 3, hi >> 3
    if w >= w_hi:
        return _scan_bytes(spk, lo, hi, spikes, n)
    n = _scan_bytes(spk, lo, w * 8, spikes, n)
    while w < w_hi:
        end = w_hi
        if w + 8 <= w_hi:
            acc = words[w] | words[w + 1] | words[w + 2] | words[w + 3]
            acc |= words[w + 4] | words[w + 5] | words[w + 6] | words[w + 7]
            if acc == 0:
                w += 8
                continue
            end = w + 8
        for k in range(w, end):  # one call site: _scan_word is inlined once
            n = _scan_word(words[k], k * 8, spikes, n)
        w = end
    return _scan_bytes(spk, w_hi * 8, hi, spikes, n)


@numba.njit(cache=True, nogil=True)
def source_spikes(spk, src, step, lo, spikes, n):
    """A spike source's spikes of this step into ``spk[lo:]`` and the spike list."""
    for i in range(src.shape[1]):
        s = src[step, i]
        spk[lo + i] = s
        if s:
            spikes[n] = lo + i
            n += 1
    return n


@numba.njit(cache=True, nogil=True, inline="always")
def _first_at_least(spikes, n, lo):
    """Position of the first entry >= lo in the ascending ``spikes[:n]`` (binary search)."""
    a, b = 0, n
    while a < b:
        m = (a + b) >> 1
        if spikes[m] < lo:
            a = m + 1
        else:
            b = m
    return a


def _weight(w, k):
    """Synapse ``k``'s weight: ``w[k]``, or ``w`` itself when the projection has one weight."""


@overload(_weight, inline="always")
def _weight_impl(w, k):
    if isinstance(w, types.Array):
        return lambda w, k: w[k]
    # one weight for all synapses: a scalar argument, not streamed from memory (same bits)
    return lambda w, k: w


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the cache for ``arr[idx]`` (``prefetcht0``; changes no value, and an address past
    the array's end is harmless: a prefetch never faults)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


#: spikes ahead whose synapse rows propagation prefetches: a row's first cache line comes
#: from L3 or memory (~50-100 ns), longer than a row of ~80 synapses takes to propagate
_ROWS_AHEAD = 2


@numba.njit(cache=True, nogil=True, inline="always")
def _prefetch_row(spikes, n, m, pre_lo, pre_hi, indptr, post):
    if m + _ROWS_AHEAD < n:
        g = spikes[m + _ROWS_AHEAD]
        if g < pre_hi:
            # the first two cache lines of the row (~80 synapses of 2-4 bytes); the hardware
            # fetches the next ones as the row is read
            k = indptr[g - pre_lo]
            prefetch(post, k)
            prefetch(post, k + 64 // post.itemsize)


@numba.njit(cache=True, nogil=True)
def propagate_list(spikes, n, pre_lo, pre_hi, indptr, post, delay, w, ring, touch, n_touch, t):
    """Event-driven CSR propagation from the spike list (ascending pre index, so every ring
    entry sums its events in the same order as a scan of the spike vector): each spike adds
    its row's weights (``w`` an array per synapse, or one scalar) at slot (t + delay) mod L
    and notes the post neuron in that slot's touch list (``n_touch`` counts past the list's
    capacity: the slot is then delivered densely). Rows of later spikes are prefetched."""
    n_slots = ring.shape[0]
    cap = touch.shape[1]
    base = t % n_slots
    for m in range(_first_at_least(spikes, n, pre_lo), n):
        g = spikes[m]
        if g >= pre_hi:
            break
        _prefetch_row(spikes, n, m, pre_lo, pre_hi, indptr, post)
        i = g - pre_lo
        for k in range(indptr[i], indptr[i + 1]):
            s = base + delay[k]  # delay in [1, L]: one subtraction instead of a modulo
            if s >= n_slots:
                s -= n_slots
            j = post[k]
            ring[s, j] += _weight(w, k)
            c = n_touch[s]
            if c < cap:
                touch[s, c] = j
            n_touch[s] = c + 1


@numba.njit(cache=True, nogil=True)
def propagate_list_slot(spikes, n, pre_lo, pre_hi, indptr, post, w, ring, touch, n_touch, s):
    """``propagate_list`` for a projection whose synapses all have one delay (slot ``s``: the
    touch count stays in a register)."""
    cap = touch.shape[1]
    c = n_touch[s]
    row = ring[s]
    tl = touch[s]
    for m in range(_first_at_least(spikes, n, pre_lo), n):
        g = spikes[m]
        if g >= pre_hi:
            break
        _prefetch_row(spikes, n, m, pre_lo, pre_hi, indptr, post)
        i = g - pre_lo
        for k in range(indptr[i], indptr[i + 1]):
            j = post[k]
            row[j] += _weight(w, k)
            if c < cap:
                tl[c] = j
            c += 1
    n_touch[s] = c


@numba.njit(cache=True, nogil=True)
def record_list(rec, step, spikes, n, lo, hi):
    """Spikes of this step with global index in [lo, hi) into the raster row ``step``."""
    for m in range(_first_at_least(spikes, n, lo), n):
        g = spikes[m]
        if g >= hi:
            break
        rec[step, g - lo] = True


@numba.njit(cache=True, nogil=True)
def record_events(ev_steps, ev_neurons, count, step, spikes, n, lo, hi):
    """Spikes of this step with global index in [lo, hi) appended as (step, neuron) pairs at
    ``count[0]``; the driver leaves room for ``hi - lo`` events before every step."""
    c = count[0]
    for m in range(_first_at_least(spikes, n, lo), n):
        g = spikes[m]
        if g >= hi:
            break
        ev_steps[c] = step
        ev_neurons[c] = g - lo
        c += 1
    count[0] = c


# ------------------------------------------------------------------ Glauber spins
@numba.njit(cache=True, nogil=True, inline="always")
def glauber_decide(h, beta, u, tie, s):
    """New spin from field h: zero noise (beta = inf) with a tie rule, else heat bath."""
    if beta == math.inf:
        # sign(h) without a data-dependent branch (random-order sweeps defeat the predictor)
        v = np.float64(h > 0.0) - np.float64(h < 0.0)
        if v == 0.0:
            if tie == 0:
                return s
            if tie == 1:
                return 1.0
            return 1.0 if u < 0.5 else -1.0
        return v
    # (1 + tanh(beta h)) / 2 written as the logistic function: one exp instead of a tanh
    return 2.0 * np.float64(u < 1.0 / (1.0 + math.exp(-2.0 * beta * h))) - 1.0


@numba.njit(cache=True, nogil=True)
def spin_dots(sigma, UT, dots):
    """dots_k = sum_j UT[j, k] sigma_j (exact for integer-valued couplings)."""
    n, k = UT.shape
    for m in range(k):
        dots[m] = 0.0
    for j in range(n):
        for m in range(k):
            dots[m] += UT[j, m] * sigma[j]


@numba.njit(cache=True, nogil=True)
def spin_sweep_low_rank(sigma, UT, coef, self_coef, dots, order, u, beta, tie, synchronous):
    """One sweep with the O(K) field; ``dots`` must hold the current overlaps."""
    n, k = UT.shape
    a = np.empty(k)
    for m in range(k):
        a[m] = coef[m] * dots[m]
    if synchronous:
        new = np.empty(n)
        for i in range(n):
            h = 0.0
            for m in range(k):
                h += UT[i, m] * a[m]
            h -= self_coef[i] * sigma[i]
            new[i] = glauber_decide(h, beta, u[i], tie, sigma[i])
        for i in range(n):
            sigma[i] = new[i]
        spin_dots(sigma, UT, dots)
        return
    for p in range(n):
        i = order[p]
        h = 0.0
        for m in range(k):
            h += UT[i, m] * a[m]
        h -= self_coef[i] * sigma[i]
        s = glauber_decide(h, beta, u[p], tie, sigma[i])
        if s != sigma[i]:
            step = s - sigma[i]
            for m in range(k):
                dots[m] += UT[i, m] * step
                a[m] = coef[m] * dots[m]
            sigma[i] = s


@numba.njit(cache=True, nogil=True)
def spin_dots_int(sigma, UT8, dots):
    """Integer overlaps dots_k = sum_j UT8[j, k] sigma_j (exact; int32, see LOW_RANK_INT_MAX)."""
    n, k = UT8.shape
    for m in range(k):
        dots[m] = 0
    for j in range(n):
        sj = np.int32(sigma[j])
        for m in range(k):
            dots[m] += np.int32(UT8[j, m]) * sj


@numba.njit(cache=True, nogil=True)
def spin_sweep_low_rank_int(sigma, UT8, c, self_coef, dots, order, u, beta, tie, synchronous):
    """One sweep for integer couplings with one weight c: h_i = c * S_i - self_coef_i sigma_i,
    S_i = sum_k UT8[i, k] dots_k computed exactly in integers (any order gives the same)."""
    n, k = UT8.shape
    if synchronous:
        new = np.empty(n)
        for i in range(n):
            acc = np.int32(0)
            for m in range(k):
                acc += np.int32(UT8[i, m]) * dots[m]
            h = c * np.float64(acc) - self_coef[i] * sigma[i]
            new[i] = glauber_decide(h, beta, u[i], tie, sigma[i])
        for i in range(n):
            sigma[i] = new[i]
        spin_dots_int(sigma, UT8, dots)
        return
    for p in range(n):
        i = order[p]
        acc = np.int32(0)
        for m in range(k):
            acc += np.int32(UT8[i, m]) * dots[m]
        h = c * np.float64(acc) - self_coef[i] * sigma[i]
        s = glauber_decide(h, beta, u[p], tie, sigma[i])
        if s != sigma[i]:
            step = np.int32(s - sigma[i])
            for m in range(k):
                dots[m] += np.int32(UT8[i, m]) * step
            sigma[i] = s


@numba.njit(cache=True, nogil=True)
def spin_sweep_dense(sigma, J, order, u, beta, tie, synchronous):
    """One sweep with the O(N) field of a dense coupling matrix."""
    n = sigma.shape[0]
    if synchronous:
        new = np.empty(n)
        for i in range(n):
            h = 0.0
            for j in range(n):
                h += J[i, j] * sigma[j]
            new[i] = glauber_decide(h, beta, u[i], tie, sigma[i])
        for i in range(n):
            sigma[i] = new[i]
        return
    for p in range(n):
        i = order[p]
        h = 0.0
        for j in range(n):
            h += J[i, j] * sigma[j]
        sigma[i] = glauber_decide(h, beta, u[p], tie, sigma[i])


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix64(x):
    """splitmix64's finaliser: a counter-based generator (value of counter x)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _sweep_randoms(key, n, order, u):
    """A uniformly random order (Fisher-Yates) and n uniforms in [0, 1) with 32-bit resolution,
    from one 64-bit draw per position: the high half picks the swap, the low half is u."""
    for i in range(n):
        order[i] = i
    c = key
    for p in range(n - 1, -1, -1):
        c += _GOLDEN
        v = _mix64(c)
        # Lemire's multiply-shift: an index in [0, p] without a division
        j = np.int64(((v >> np.uint64(32)) * np.uint64(p + 1)) >> np.uint64(32))
        order[p], order[j] = order[j], order[p]
        u[p] = np.float64(v & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)


@numba.njit(cache=True, nogil=True)
def spin_sweeps_own_rng(
    sigma,
    UT,
    coef,
    self_coef,
    dots,
    UT8,
    c,
    dots_int,
    J,
    mode,
    beta,
    tie,
    synchronous,
    seed,
    t0,
    n_sweeps,
    patterns,
    overlaps,
    probe_from_dots,
):
    """``n_sweeps`` sweeps with numba's own counter-based generator keyed by (seed, sweep), so
    chunked runs agree.
    ``mode``: 0 float low rank, 1 integer low rank, 2 dense. Records ``patterns @ sigma / N``
    after every sweep."""
    n = sigma.shape[0]
    order = np.empty(n, np.int64)
    u = np.zeros(n)
    for t in range(n_sweeps):
        key = _mix64(np.uint64(seed) * _GOLDEN + np.uint64(t0 + t) + np.uint64(1))
        _sweep_randoms(key, n, order, u)
        if mode == 1:
            spin_sweep_low_rank_int(
                sigma, UT8, c, self_coef, dots_int, order, u, beta, tie, synchronous
            )
        elif mode == 0:
            spin_sweep_low_rank(sigma, UT, coef, self_coef, dots, order, u, beta, tie, synchronous)
        else:
            spin_sweep_dense(sigma, J, order, u, beta, tie, synchronous)
        if probe_from_dots:  # the probed patterns are the coupling vectors: O(K), exact
            for q in range(patterns.shape[0]):
                overlaps[t, q] = dots_int[q] / n
            continue
        for q in range(patterns.shape[0]):
            acc = 0.0
            for i in range(n):
                acc += patterns[q, i] * sigma[i]
            overlaps[t, q] = acc / n
