"""MNIST from the official idx files, checksum-verified.

MNIST (LeCun, Bottou, Bengio & Haffner 1998) holds 28 x 28 grey-level images of handwritten
digits 0-9: 60,000 training and 10,000 test images. The official files are gzipped idx files,

- ``train-images-idx3-ubyte.gz`` / ``t10k-images-idx3-ubyte.gz``: magic 2051, then the
  big-endian uint32 dims (n, 28, 28), then n * 784 uint8 pixels (0 = background, 255 = ink);
- ``train-labels-idx1-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz``: magic 2049, then n, then n
  uint8 labels 0..9.

They live in ``<root>/mnist/`` with ``root`` an argument or ``$NEUROMEM_DATA``; the
uncompressed names (without ``.gz``) are accepted too. The *decompressed* content is checked
against :data:`MNIST_SHA256` (the ``.gz`` wrappers differ between mirrors). Decompression is
bounded by the known size, so a zip bomb is refused after reading at most that many bytes. A
missing file is downloaded from :data:`MNIST_URLS` (first the mirror torchvision uses, then
the original site), verified and only then moved into place.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..data import data_dir
from ..errors import DataError

#: Mirrors tried in order; the file name is appended.
MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
SPLITS = ("train", "test")
N_SAMPLES = {"train": 60_000, "test": 10_000}
_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_SHAPE = (28, 28)
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049

#: Decompressed file name -> MD5 as published on yann.lecun.com (for reference only).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
#: Decompressed file name -> SHA-256 of the decompressed bytes, computed from a copy whose
#: decompressed MD5s all equal the official :data:`MNIST_MD5`.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def _expected_size(name: str) -> int:
    """Decompressed size in bytes of an official file: header + payload."""
    n = N_SAMPLES["train" if name.startswith("train") else "test"]
    if "images" in name:
        return 16 + n * _IMAGE_SHAPE[0] * _IMAGE_SHAPE[1]
    return 8 + n


def _read_bounded(path: Path, limit: int, shown: str, compressed: bool) -> bytes:
    """Decompressed bytes of ``path``, refusing more than ``limit`` bytes without reading
    further; ``shown`` names the file in errors."""
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"data file {shown} is truncated or not a valid gzip file: {e}") from None
    if len(data) > limit:
        raise DataError(
            f"data file {shown} holds more than the {limit} bytes expected "
            "(not an official MNIST file, or a zip bomb); refused"
        )
    return data


def _parse_idx(data: bytes, path: str, magic: int) -> np.ndarray:
    """Array of an idx file of uint8 items (read-only view of ``data``)."""
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(f"data file {path} is truncated: {len(data)} bytes, header needs {header}")
    head = np.frombuffer(data, dtype=">u4", count=1 + ndim)
    if int(head[0]) != magic:
        raise DataError(
            f"data file {path} has idx magic number {int(head[0])}, expected {magic} "
            "(not an MNIST file of this kind)"
        )
    dims = tuple(int(d) for d in head[1:])
    if ndim == 3 and dims[1:] != _IMAGE_SHAPE:
        raise DataError(f"data file {path} holds images of {dims[1:]}, expected {_IMAGE_SHAPE}")
    size = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != size:
        what = "truncated" if len(data) < size else "longer than its header says"
        raise DataError(f"data file {path} is {what}: {len(data)} bytes, header implies {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_verified(path: Path, name: str, shown: str | None = None) -> np.ndarray:
    """Parse ``path`` (the official file ``name``, gzipped if ``shown`` or ``path`` ends in
    ``.gz``) and check the SHA-256 of its content; ``shown`` (default ``path``) names it in
    errors."""
    shown = str(path) if shown is None else shown
    compressed = shown.endswith(".gz") or path.name.endswith(".gz")
    data = _read_bounded(path, _expected_size(name), shown, compressed)
    array = _parse_idx(data, shown, _IMAGES_MAGIC if "images" in name else _LABELS_MAGIC)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_SHA256[name]:
        raise DataError(
            f"data file {shown} has SHA-256 {digest} (of the decompressed content), expected "
            f"{MNIST_SHA256[name]} (corrupt or a different version)"
        )
    return array


def _download(name: str, directory: Path, timeout: float) -> Path:
    """Fetch ``name.gz`` into ``directory``: to a temporary file there, verified, then
    atomically renamed. Returns the path; raises one DataError line if no mirror works."""
    dest = directory / f"{name}.gz"
    limit = _expected_size(name) + (1 << 16)  # gzip of incompressible data grows a little
    created = not directory.exists()
    failures = []
    for base in MNIST_URLS:
        url = base + dest.name
        tmp = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{dest.name}.", suffix=".part")
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                total = 0
                while block := r.read(1 << 20):
                    total += len(block)
                    if total > limit:
                        raise DataError(f"{url} sent more than {limit} bytes; refused")
                    out.write(block)
            _read_verified(tmp, name, shown=url)
            os.replace(tmp, dest)
            return dest
        except (OSError, http.client.HTTPException, DataError) as e:
            why = " ".join(str(e).split())  # one line, whatever the server sent
            failures.append(why if isinstance(e, DataError) else f"{url}: {why}")
        finally:
            if tmp is not None and tmp.exists():
                tmp.unlink()
    if created:  # leave no empty folder behind
        try:
            directory.rmdir()
        except OSError:
            pass
    raise DataError(
        f"MNIST file {dest.name} is missing from {directory} and could not be downloaded: "
        + "; ".join(failures)
    )


def _locate(name: str, directory: Path, download: bool, timeout: float) -> Path:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    if not download:
        raise DataError(
            f"MNIST file {name}.gz (or {name}) is missing from {directory}; download it from "
            f"{MNIST_URLS[0]}{name}.gz (or {MNIST_URLS[1]}) into that folder, "
            "or pass download=True"
        )
    return _download(name, directory, timeout)


@functools.lru_cache(maxsize=2)
def _load_cached(
    images: Path, labels: Path, split: str, stamp: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    del stamp  # part of the cache key only: a changed file is read again
    x = _read_verified(images, f"{_PREFIX[split]}-images-idx3-ubyte")
    y = _read_verified(labels, f"{_PREFIX[split]}-labels-idx1-ubyte")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images} holds {x.shape[0]} images but {labels} {y.shape[0]} labels")
    if y.size and int(y.max()) > 9:
        raise DataError(f"data file {labels} has labels outside 0..9")
    return x, y


def load_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One MNIST split, verified against :data:`MNIST_SHA256`.

    Parameters
    ----------
    split : {"train", "test"}
        ``"train"`` (60,000 images) or ``"test"`` (10,000, the ``t10k`` files).
    root : path, optional
        Data directory holding ``mnist/``; default ``$NEUROMEM_DATA``.
    download : bool
        Fetch missing files from :data:`MNIST_URLS` into ``<root>/mnist/`` (created if
        needed). With ``False`` a missing file is a DataError saying where to get it.
    timeout : float
        Seconds to wait on each network operation of a download.

    Returns
    -------
    images : np.ndarray
        uint8 (n, 28, 28), row-major pixels, 0 (background) .. 255 (ink).
    labels : np.ndarray
        uint8 (n,), digits 0..9.

    Raises
    ------
    DataError
        Unknown split; no data directory; a file missing (and not downloadable), not gzip,
        truncated, too large, with a wrong idx magic number, or with the wrong SHA-256.
    """
    if split not in SPLITS:
        raise DataError(f"unknown MNIST split {split!r}; known: {', '.join(SPLITS)}")
    directory = data_dir(root) / "mnist"
    prefix = _PREFIX[split]
    images = _locate(f"{prefix}-images-idx3-ubyte", directory, download, timeout)
    labels = _locate(f"{prefix}-labels-idx1-ubyte", directory, download, timeout)
    stamp = tuple(v for p in (images, labels) for v in (p.stat().st_size, p.stat().st_mtime_ns))
    x, y = _load_cached(images.resolve(), labels.resolve(), split, stamp)
    return x.copy(), y.copy()
