"""Connection patterns as (pre_index, post_index) arrays, PyNN connector meanings."""

from __future__ import annotations

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


def fixed_probability(
    n_pre: int, n_post: int, p: float, seed: int, allow_self: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair connected independently with probability ``p`` (numpy PCG64 with ``seed``)."""
    if not 0.0 <= p <= 1.0:
        raise SpecError(f"fixed_probability: p must be in [0, 1], got {p}")
    mask = np.random.default_rng(seed).random((n_pre, n_post)) < p
    if not allow_self:
        np.fill_diagonal(mask, False)
    pre, post = np.nonzero(mask)
    return pre, post
