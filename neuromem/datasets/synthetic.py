"""Synthetic long-horizon spike tasks with a difficulty knob.

Delayed pattern recall (:class:`DelayedRecall`)
    Layout over time, T = cue_len + delay + recall_len steps, channels n_in =
    n_signal + n_recall::

        steps      [0, cue_len)        [cue_len, cue_len+delay)   [.., T)
        signal     pattern[label]      noise                      noise
                   + noise
        recall     silent              silent                     spike every step

    There are ``n_classes`` fixed random spike patterns (cue_len, n_signal), each entry a
    spike with probability ``pattern_rate`` (Bernoulli per bin, i.e. binned Poisson); they
    depend only on ``pattern_seed`` and so are the same for every batch. A sample shows the
    pattern of its class in the cue window, with background noise spikes (probability
    ``noise_rate`` per bin and channel, independent of the label) on the signal channels
    for the whole trial, and the dedicated recall channels fire throughout the last
    ``recall_len`` steps. The label is the pattern class, read out at the end of the trial.

    Chance level is ``1 / n_classes`` (labels are balanced). A readout without memory sees
    at any step during the delay and recall windows only label-independent noise and the
    recall cue, whose distribution is identical for every class, so it is at chance; a
    model must carry information about the cue over ``delay + recall_len`` steps (the
    horizon). Difficulty knobs: ``delay`` (horizon), ``noise_rate`` (it also corrupts the
    cue and adds distracting input to be ignored during the delay), ``n_classes`` and
    ``cue_len``/``pattern_rate`` (pattern separability). ``n_classes=2`` is a bit-memory task.

Spike-coded adding (:func:`spike_adding`)
    A regression variant of the adding problem: a value population carries a random level
    per step as spike probability, a marker channel spikes at one step in each half; the
    target is the sum of the two marked steps' population spike fractions (0..2), fully
    determined by the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DelayedRecall:
    """Delayed recall of random spike-pattern classes; see the module docstring."""

    n_classes: int = 4
    n_signal: int = 32
    n_recall: int = 2
    cue_len: int = 20
    delay: int = 200
    recall_len: int = 10
    pattern_rate: float = 0.2
    noise_rate: float = 0.02
    pattern_seed: int = 0

    def __post_init__(self):
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        for name in ("n_signal", "n_recall", "cue_len", "recall_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")
        for name in ("pattern_rate", "noise_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def n_in(self) -> int:
        """Input channels: signal channels then recall channels."""
        return self.n_signal + self.n_recall

    @property
    def n_steps(self) -> int:
        return self.cue_len + self.delay + self.recall_len

    @property
    def horizon(self) -> int:
        """Steps from the end of the cue to the readout at the last step."""
        return self.delay + self.recall_len

    @property
    def chance(self) -> float:
        return 1.0 / self.n_classes

    @property
    def cue_window(self) -> slice:
        return slice(0, self.cue_len)

    @property
    def delay_window(self) -> slice:
        return slice(self.cue_len, self.cue_len + self.delay)

    @property
    def recall_window(self) -> slice:
        return slice(self.cue_len + self.delay, self.n_steps)

    def patterns(self) -> np.ndarray:
        """The fixed class patterns, bool (n_classes, cue_len, n_signal)."""
        rng = np.random.default_rng([self.pattern_seed, 0x5EED])
        shape = (self.n_classes, self.cue_len, self.n_signal)
        return rng.random(shape) < self.pattern_rate

    def sample(self, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, labels)``: x float32 (batch, T, n_in) of 0/1 spikes, labels int64 (batch,).

        Labels are balanced (``arange(batch) % n_classes``, shuffled); the same ``seed`` and
        task parameters give the same batch.
        """
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(batch) % self.n_classes)
        x = np.zeros((batch, self.n_steps, self.n_in), dtype=np.float32)
        # Noise first, for the whole batch and independent of the labels.
        x[:, :, : self.n_signal] = rng.random((batch, self.n_steps, self.n_signal)) < (
            self.noise_rate
        )
        x[:, self.cue_window, : self.n_signal] = np.maximum(
            x[:, self.cue_window, : self.n_signal], self.patterns()[labels]
        )
        x[:, self.recall_window, self.n_signal :] = 1.0
        return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def delayed_recall(batch: int, seed: int = 0, **task_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of :class:`DelayedRecall` (keyword arguments are its fields)."""
    return DelayedRecall(**task_kwargs).sample(batch, seed=seed)


def spike_adding(
    batch: int, n_steps: int = 200, n_value: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike-coded adding problem.

    Returns x float32 (batch, n_steps, n_value + 1) and targets float32 (batch,). Channels
    0..n_value-1 spike with a per-step level drawn uniformly from [0, 1]; the last channel
    (marker) spikes once in ``[0, n_steps // 2)`` and once in ``[n_steps // 2, n_steps)``.
    The target is the sum over the two marked steps of the fraction of value channels that
    spiked. Predicting the mean (1.0) gives MSE about 2 * (1/12 + 1/(6 n_value)).
    """
    if n_steps < 2 or n_value < 1:
        raise ValueError(f"need n_steps >= 2 and n_value >= 1, got {n_steps}, {n_value}")
    rng = np.random.default_rng(seed)
    level = rng.random((batch, n_steps, 1))
    spikes = rng.random((batch, n_steps, n_value)) < level
    half = n_steps // 2
    t1 = rng.integers(0, half, size=batch)
    t2 = rng.integers(half, n_steps, size=batch)
    marker = np.zeros((batch, n_steps, 1), dtype=bool)
    b = np.arange(batch)
    marker[b, t1, 0] = True
    marker[b, t2, 0] = True
    frac = spikes.mean(axis=2)
    target = frac[b, t1] + frac[b, t2]
    x = np.concatenate([spikes, marker], axis=2).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(target.astype(np.float32))
