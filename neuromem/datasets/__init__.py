"""Data sets for the memory models: MNIST and SHD / SHD-Adding loaders, synthetic spike tasks."""

from .mnist import MNIST_SHA256, MNIST_URLS, load_mnist
from .shd import (
    N_ADDING_CLASSES,
    N_CHANNELS,
    N_CLASSES,
    SHD_MD5,
    SHD_URL,
    bin_spikes,
    load_shd,
    load_shd_adding,
    read_shd_events,
    shd_adding,
    shd_path,
)
from .synthetic import DelayedRecall, delayed_recall, spike_adding

__all__ = [
    "MNIST_SHA256",
    "MNIST_URLS",
    "N_ADDING_CLASSES",
    "N_CHANNELS",
    "N_CLASSES",
    "SHD_MD5",
    "SHD_URL",
    "DelayedRecall",
    "bin_spikes",
    "delayed_recall",
    "load_mnist",
    "load_shd",
    "load_shd_adding",
    "read_shd_events",
    "shd_adding",
    "shd_path",
    "spike_adding",
]
