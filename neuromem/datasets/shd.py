"""Spiking Heidelberg Digits (SHD) and the SHD-Adding task.

SHD (Cramer, Stradmann, Schemmel & Zenke 2020, IEEE TNNLS, doi:10.1109/TNNLS.2020.3044364;
CC BY 4.0) holds spoken digits 0-9 in German and English, encoded by a cochlea model into
spikes on 700 channels: 8156 training and 2264 test samples of up to about 1.4 s.
The official files are gzipped HDF5, ``shd_train.h5.gz`` and ``shd_test.h5.gz``, at
https://zenkelab.org/datasets/ (formerly compneuro.net/datasets/), with layout

- ``spikes/times``: ragged float arrays, spike times in seconds, one array per sample;
- ``spikes/units``: ragged uint16 arrays, channel ids 0..699, aligned with the times;
- ``labels``: uint8, 20 classes; 0-9 are German "null".."neun", 10-19 English "zero".."nine",
  so the digit is ``label % 10``.

Files live in ``root`` (an argument, else ``$NEUROMEM_DATA/shd``). A ``.h5.gz`` there is
verified and decompressed next to itself; nothing is downloaded unless ``download=True``.

SHD-Adding (Spieler et al. 2023, the ELM neuron paper) concatenates two samples in time and
asks for the sum of their digits: 19 classes, 0..18.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import data_dir
from ..errors import DataError

#: Base URL of the official files (the zenkelab site; compneuro.net redirected there).
SHD_URL = "https://zenkelab.org/datasets/"
N_CHANNELS = 700
N_CLASSES = 20
N_ADDING_CLASSES = 19
SPLITS = ("train", "test")

#: File name -> MD5 as published. The official list is https://zenkelab.org/datasets/md5sums.txt,
#: which could not be fetched from here (no network). The values below are the ones embedded in
#: norse (github.com/norse/norse, norse/dataset/spiking_heidelberg.py, commit 03027527f99e,
#: fields ``train_checksum``/``test_checksum`` for the ``.h5.gz`` archives and
#: ``train_file_md5``/``test_file_md5`` for the decompressed ``.h5``); the same ``.h5.gz``
#: values are recorded by two further independent public loaders that cite md5sums.txt as
#: their source. tonic and spikingjelly embed MD5s of the ``.h5.zip`` archives
#: (f3252aeb598ac776c1b526422d90eecb train, 1503a5064faa34311c398fb0a1ed0a6f test), which
#: are different files and are not used here.
SHD_MD5 = {
    "shd_train.h5.gz": "d47c9825dee33347913e8ce0f2be08b0",
    "shd_test.h5.gz": "3062a80ec0c5719404d5b02e166543b1",
    "shd_train.h5": "8e9877c85f29a28dd353ea6a54402667",
    "shd_test.h5": "207ad1295a0ab611e22d1734989c254e",
}


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, expected: str) -> None:
    digest = _md5(path)
    if digest != expected.lower():
        raise DataError(
            f"data file {path} has MD5 {digest}, expected {expected.lower()} "
            "(corrupt, truncated or a different version)"
        )


def _shd_root(root: str | os.PathLike | None, create: bool) -> Path:
    if root is not None:
        p = Path(root)
    else:
        p = data_dir() / "shd"
    if create:
        p.mkdir(parents=True, exist_ok=True)
    elif not p.is_dir():
        raise DataError(
            f"SHD directory {p} does not exist; put shd_train.h5.gz / shd_test.h5.gz there "
            f"(from {SHD_URL}) or pass download=True"
        )
    return p


def _download(url: str, dest: Path, timeout: float = 60.0) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, tmp.open("wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not download {url} to {dest} (offline?): {e}") from e
    os.replace(tmp, dest)


def _gunzip(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    except (OSError, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"data file {src} is not a valid gzip file: {e}") from e
    os.replace(tmp, dest)


def shd_path(
    split: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """Path of the verified, decompressed ``shd_<split>.h5``.

    A present ``.h5`` is used if its MD5 is known (``checksums``, default :data:`SHD_MD5`) and
    matches. Otherwise the ``.h5.gz`` is verified and decompressed (overwriting the ``.h5``).
    A missing archive is downloaded from :data:`SHD_URL` only with ``download=True``. Every
    file used is checked against a known MD5; a file with no known MD5 is a DataError, so pass
    ``checksums`` for private copies.
    """
    if split not in SPLITS:
        raise DataError(f"unknown SHD split {split!r}; known: {', '.join(SPLITS)}")
    sums = dict(SHD_MD5 if checksums is None else checksums)
    d = _shd_root(root, create=download)
    h5 = d / f"shd_{split}.h5"
    gz = d / f"shd_{split}.h5.gz"
    if h5.is_file() and h5.name in sums:
        _check(h5, sums[h5.name])
        return h5
    if not gz.is_file():
        if not download:
            where = f"{gz} (or {h5}, which needs a known checksum)"
            raise DataError(f"data file {where} is missing; pass download=True to fetch it")
        if gz.name not in sums:
            raise DataError(f"no known MD5 for {gz}; refusing to download an unverifiable file")
        _download(SHD_URL + gz.name, gz)
    if gz.name not in sums:
        raise DataError(f"no known MD5 for {gz}; pass checksums={{{gz.name!r}: '<md5>'}}")
    _check(gz, sums[gz.name])
    _gunzip(gz, h5)
    if h5.name in sums:
        _check(h5, sums[h5.name])
    return h5


def read_shd_events(
    path: str | os.PathLike, indices: Sequence[int] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Raw events of an SHD-layout HDF5 file: (times in s, channel ids, labels)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            times_ds, units_ds, labels_ds = f["spikes/times"], f["spikes/units"], f["labels"]
            n = labels_ds.shape[0]
            if times_ds.shape[0] != n or units_ds.shape[0] != n:
                raise DataError(
                    f"{path}: spikes/times ({times_ds.shape[0]}), spikes/units "
                    f"({units_ds.shape[0]}) and labels ({n}) differ in length"
                )
            if indices is None:
                times, units, labels = times_ds[:], units_ds[:], labels_ds[:]
            else:
                idx = np.asarray(indices, dtype=np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise DataError(f"{path}: sample index out of range 0..{n - 1}")
                times = [times_ds[i] for i in idx]
                units = [units_ds[i] for i in idx]
                labels = labels_ds[:][idx]
    except KeyError as e:
        raise DataError(f"{path} is not in the SHD layout: {e}") from e
    except OSError as e:
        raise DataError(f"{path} is not a readable HDF5 file: {e}") from e
    times = [np.asarray(t, dtype=np.float64) for t in times]
    units = [np.asarray(u, dtype=np.int64) for u in units]
    for i, (t, u) in enumerate(zip(times, units, strict=True)):
        if t.shape != u.shape:
            raise DataError(f"{path}: sample {i} has {t.size} times but {u.size} units")
        if u.size and (u.min() < 0 or u.max() >= N_CHANNELS):
            raise DataError(f"{path}: sample {i} has a channel outside 0..{N_CHANNELS - 1}")
    return times, units, np.asarray(labels, dtype=np.int64)


def bin_spikes(
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    dt_ms: float = 10.0,
    max_time_ms: float = 1400.0,
    binary: bool = False,
    n_channels: int = N_CHANNELS,
    dtype: torch.dtype = torch.float32,
    chunk: int = 64,
) -> torch.Tensor:
    """Dense raster (n_samples, T, n_channels) with T = ceil(max_time_ms / dt_ms).

    Bin k holds spikes with ``k*dt <= t < (k+1)*dt``; spikes at or after ``max_time_ms`` are
    dropped. Values are spike counts, or 0/1 with ``binary=True``.
    """
    if dt_ms <= 0 or max_time_ms <= 0:
        raise ValueError(f"dt_ms ({dt_ms}) and max_time_ms ({max_time_ms}) must be positive")
    n = len(times)
    n_bins = int(np.ceil(max_time_ms / dt_ms - 1e-9))
    out = torch.zeros((n, n_bins, n_channels), dtype=dtype)
    per = n_bins * n_channels
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        flat = []
        for s in range(s0, s1):
            b = np.floor(np.asarray(times[s], dtype=np.float64) * 1000.0 / dt_ms).astype(np.int64)
            keep = (b >= 0) & (b < n_bins)
            flat.append((s - s0) * per + b[keep] * n_channels + np.asarray(units[s])[keep])
        counts = np.bincount(np.concatenate(flat), minlength=(s1 - s0) * per)
        if binary:
            counts = np.minimum(counts, 1)
        out[s0:s1] = torch.from_numpy(counts.reshape(s1 - s0, n_bins, n_channels)).to(dtype)
    return out


def load_shd(
    split: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    dt_ms: float = 10.0,
    max_time_ms: float = 1400.0,
    binary: bool = False,
    dtype: torch.dtype = torch.float32,
    indices: Sequence[int] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binned SHD split.

    Returns ``(x, labels)``: x (n_samples, T, 700) of ``dtype`` with T = ceil(max_time_ms /
    dt_ms) (see :func:`bin_spikes`), labels int64 in 0..19 (digit = label % 10). The dense
    raster takes n_samples * T * 700 * itemsize bytes (train at 10 ms in float32: 3.2 GB; use
    ``dtype=torch.uint8`` or ``binary=True, dtype=torch.bool``, or ``indices``, to shrink it).
    """
    path = shd_path(split, root=root, download=download, checksums=checksums)
    times, units, labels = read_shd_events(path, indices)
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataError(f"{path}: labels outside 0..{N_CLASSES - 1}")
    x = bin_spikes(times, units, dt_ms=dt_ms, max_time_ms=max_time_ms, binary=binary, dtype=dtype)
    return x, torch.from_numpy(labels)


def shd_adding(
    x: torch.Tensor,
    labels: torch.Tensor,
    n_pairs: int | None = None,
    seed: int = 0,
    return_pairs: bool = False,
):
    """SHD-Adding: two binned samples of one split concatenated in time.

    Pairs (i, j) are drawn with ``numpy.random.default_rng(seed)``: i runs over a permutation
    of the samples (repeated if ``n_pairs`` exceeds their number), j is uniform and
    independent. The input is ``cat(x[i], x[j])`` along time, (n_pairs, 2T, C); the label is
    ``labels[i] % 10 + labels[j] % 10`` in 0..18 (19 classes, language ignored).
    ``n_pairs`` defaults to the number of samples. With ``return_pairs`` also returns the
    (n_pairs, 2) index tensor.
    """
    n = x.shape[0]
    if n == 0 or labels.shape[0] != n:
        raise ValueError(f"x has {n} samples and labels {labels.shape[0]}; need equal, > 0")
    m = n if n_pairs is None else int(n_pairs)
    rng = np.random.default_rng(seed)
    first = np.concatenate([rng.permutation(n) for _ in range(-(-m // n))])[:m]
    second = rng.integers(0, n, size=m)
    i, j = torch.from_numpy(first), torch.from_numpy(second)
    xa = torch.cat([x[i], x[j]], dim=1)
    y = (labels[i] % 10 + labels[j] % 10).to(torch.int64)
    if return_pairs:
        return xa, y, torch.stack([i, j], dim=1)
    return xa, y


def load_shd_adding(
    split: str,
    n_pairs: int | None = None,
    seed: int = 0,
    **load_kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`load_shd` then :func:`shd_adding`; keyword arguments go to :func:`load_shd`."""
    x, labels = load_shd(split, **load_kwargs)
    return shd_adding(x, labels, n_pairs=n_pairs, seed=seed)
