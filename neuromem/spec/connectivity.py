"""Connection patterns as (pre_index, post_index) arrays, PyNN connector meanings."""

from __future__ import annotations

import math

import numpy as np

from ..errors import SpecError


def one_to_one(n_pre: int, n_post: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Neuron i to neuron i (sizes must match)."""
    n_post = n_pre if n_post is None else n_post
    if n_pre != n_post:
        raise SpecError(f"one_to_one: size mismatch, {n_pre} pre and {n_post} post neurons")
    i = np.arange(n_pre)
    return i, i.copy()


def all_to_all(n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pre neuron to every post neuron (pre-major order)."""
    pre, post = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
    return pre.ravel(), post.ravel()


def all_but_self(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every neuron to every other neuron of an equal-sized population."""
    pre, post = all_to_all(n, n)
    keep = pre != post
    return pre[keep], post[keep]


#: Gap draws per block of rows in ``fixed_probability`` (bounds its working memory: 32 MiB).
_GAP_BLOCK = 1 << 22
#: Gaps drawn per row and draw: the mean count plus this many standard deviations (plus 10).
_WIDTH_SD = 6.0


def fixed_probability(
    n_pre: int, n_post: int, p: float, seed: int, allow_self: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Each (pre, post) pair connected independently with probability ``p``.

    Drawn per pre neuron in O(synapses) memory (no n_pre x n_post matrix): along a row, the
    gaps between successive connected post indices are geometric(p), which is exactly the
    distribution of independent Bernoulli(p) trials. Rows are drawn in blocks of fixed size
    (from ``n_post`` and ``p`` only) from one numpy PCG64 stream seeded with ``seed``; a row
    that its block's gaps did not carry past ``n_post`` continues with further draws from the
    same stream. So the same arguments always give the same synapses (the stream differs from
    neuromem <= 0.1's dense draw: networks built with it get other, equally distributed,
    synapses).

    Parameters
    ----------
    n_pre, n_post : int
        Population sizes (neurons).
    p : float
        Connection probability in [0, 1].
    seed : int
        Seed of the generator.
    allow_self : bool
        If False, pairs (i, i) are dropped (for a projection of a population onto itself).

    Returns
    -------
    pre, post : np.ndarray
        int64 indices of the synapses, sorted by (pre, post).
    """
    if not 0.0 <= p <= 1.0:
        raise SpecError(f"fixed_probability: p must be in [0, 1], got {p}")
    for name, n in (("n_pre", n_pre), ("n_post", n_post)):
        if not isinstance(n, int | np.integer) or n < 0:
            raise SpecError(f"fixed_probability: {name} must be an integer >= 0, got {n!r}")
    empty = np.zeros(0, dtype=np.int64)
    if p == 0.0 or n_pre == 0 or n_post == 0:
        return empty, empty.copy()
    rng = np.random.default_rng(seed)
    mean = n_post * p
    width = int(mean + _WIDTH_SD * math.sqrt(mean * (1.0 - p)) + 10.0)  # gaps per row, draw
    rows_per_block = max(1, _GAP_BLOCK // width)
    pres, posts = [], []
    extra = False

    def gaps(rows: int) -> np.ndarray:
        # a gap > n_post leaves the row whatever it is: clipping keeps the sums in int64
        return np.minimum(rng.geometric(p, size=(rows, width)), n_post + 1)

    for r0 in range(0, n_pre, rows_per_block):
        rows = np.arange(r0, min(n_pre, r0 + rows_per_block))
        pos = np.cumsum(gaps(rows.size), axis=1) - 1
        while True:
            keep = pos < n_post
            pres.append(np.broadcast_to(rows[:, None], pos.shape)[keep])
            posts.append(pos[keep])
            more = pos[:, -1] < n_post - 1  # rows not yet carried past the last post index
            if not more.any():
                break
            extra = True
            rows = rows[more]
            pos = pos[more, -1:] + np.cumsum(gaps(rows.size), axis=1)
    pre, post = np.concatenate(pres), np.concatenate(posts)
    if extra:  # continuation draws were appended after their block: restore (pre, post) order
        order = np.argsort(pre, kind="stable")
        pre, post = pre[order], post[order]
    if not allow_self:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return pre.astype(np.int64), post.astype(np.int64)
