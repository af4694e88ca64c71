"""Time per stored and per retrieved item as the number of stored items grows (the papers'
"learning and best-match retrieval in fixed time"), shared by the experiment and the benchmark."""

from __future__ import annotations

import time

import numpy as np

from .model import Sparsey


def per_item_times(model: Sparsey, items: np.ndarray, block: int) -> dict:
    """Store ``items`` block by block into ``model`` (reset first), timing each block's
    learning and then its recognition; per-item times in microseconds.

    Returns
    -------
    dict
        ``stored_at_block_end``, ``store_us_per_item``, ``retrieve_us_per_item`` and
        ``slope_us_per_1000_stored`` (least-squares slope of each curve, us per 1,000 items).
    """
    model.learn(items[:2])  # compile the kernels outside the timing
    model.reset()
    store, retrieve = [], []
    for b in range(0, len(items) - block + 1, block):
        t0 = time.perf_counter()
        model.learn(items[b : b + block])
        store.append((time.perf_counter() - t0) / block * 1e6)
        t0 = time.perf_counter()
        model.recognise(items[b : b + block])
        retrieve.append((time.perf_counter() - t0) / block * 1e6)
    stored = np.arange(1, len(store) + 1) * block
    return {
        "stored_at_block_end": stored.tolist(),
        "store_us_per_item": [round(t, 2) for t in store],
        "retrieve_us_per_item": [round(t, 2) for t in retrieve],
        "slope_us_per_1000_stored": {
            k: float(np.polyfit(stored, v, 1)[0] * 1000)
            for k, v in (("store", store), ("retrieve", retrieve))
        },
    }
