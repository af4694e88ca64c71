"""MNIST loader: the shared official files, corrupt / hostile copies, offline and download paths.

Nothing here touches the network: downloads go to a monkeypatched ``urlopen``.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from neuromem.datasets import MNIST_URLS, load_mnist
from neuromem.errors import DataError

_DATA = os.environ.get("NEUROMEM_DATA")
SHARED = Path(_DATA) / "mnist" if _DATA else None
pytestmark = pytest.mark.skipif(
    SHARED is None or not SHARED.is_dir(),
    reason="NEUROMEM_DATA is unset or has no mnist/ folder (the official MNIST idx files)",
)

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
# Published class counts of the two splits.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _test_split_copy(root: Path) -> Path:
    """``root/mnist`` holding copies of the shared t10k files; returns that folder."""
    d = root / "mnist"
    d.mkdir(parents=True)
    for name in (TEST_IMAGES, TEST_LABELS):
        shutil.copyfile(SHARED / f"{name}.gz", d / f"{name}.gz")
    return d


def _content(name: str) -> bytes:
    with gzip.open(SHARED / f"{name}.gz", "rb") as f:
        return f.read()


def _regzip(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, compresslevel=1))


def _no_network(url, timeout=None):
    raise urllib.error.URLError("network is unreachable (test)")


def _serve(files: dict[str, bytes], calls: list[str]):
    """A fake urlopen serving ``files`` by basename; records the URLs asked for."""

    def urlopen(url, timeout=None):
        assert timeout is not None and timeout > 0
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(files[name])

    return urlopen


def _assert_one_line(err: DataError) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert err.__cause__ is None and (err.__suppress_context__ or err.__context__ is None)
    return msg


def test_train_split():
    x, y = load_mnist("train", download=False)
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60_000,) and y.dtype == np.uint8
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 60_000 and counts.tolist() == TRAIN_COUNTS
    assert x.min() == 0 and x.max() == 255
    assert y[0] == 5 and y[:5].tolist() == [5, 0, 4, 1, 9]
    assert x.flags.writeable  # a copy: editing it cannot touch the cache


def test_test_split_and_cache_returns_copies():
    x, y = load_mnist("test", root=SHARED.parent, download=False)
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
    assert x.dtype == y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS
    assert y[0] == 7 and x.min() == 0 and x.max() == 255
    x[:] = 0
    x2, _ = load_mnist("test", root=SHARED.parent, download=False)
    assert x2.max() == 255


def test_uncompressed_files_are_accepted(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    for name in (TEST_IMAGES, TEST_LABELS):
        (d / name).write_bytes(_content(name))
    x, y = load_mnist("test", root=tmp_path, download=False)
    assert x.shape == (10_000, 28, 28) and y[0] == 7


def test_unknown_split():
    with pytest.raises(DataError, match="unknown MNIST split 'val'"):
        load_mnist("val")


def test_corrupted_content_is_a_sha256_error(tmp_path):
    d = _test_split_copy(tmp_path)
    data = bytearray(_content(TEST_LABELS))
    data[9] ^= 1  # second label 2 -> 3: a valid idx file with other content
    _regzip(d / f"{TEST_LABELS}.gz", bytes(data))
    with pytest.raises(DataError, match="SHA-256") as e:
        load_mnist("test", root=tmp_path, download=False)
    assert f"{TEST_LABELS}.gz" in str(e.value) and "expected ff7bcfd4" in str(e.value)


def test_wrong_magic_number(tmp_path):
    d = _test_split_copy(tmp_path)
    data = bytearray(_content(TEST_LABELS))
    data[3] = 0x03  # 2049 -> 2051: claims to be an images file
    _regzip(d / f"{TEST_LABELS}.gz", bytes(data))
    with pytest.raises(DataError, match="magic number 2051, expected 2049") as e:
        load_mnist("test", root=tmp_path, download=False)
    assert TEST_LABELS in str(e.value)


@pytest.mark.parametrize("cut", ["gzip", "content"])
def test_truncated_file(tmp_path, cut):
    d = _test_split_copy(tmp_path)
    gz = d / f"{TEST_LABELS}.gz"
    if cut == "gzip":
        gz.write_bytes(gz.read_bytes()[:-100])
    else:
        _regzip(gz, _content(TEST_LABELS)[:-10])
    with pytest.raises(DataError, match="truncated") as e:
        load_mnist("test", root=tmp_path, download=False)
    assert TEST_LABELS in str(e.value)


def test_zip_bomb_is_refused(tmp_path):
    d = _test_split_copy(tmp_path)
    _regzip(d / f"{TEST_LABELS}.gz", _content(TEST_LABELS) + bytes(50 << 20))
    with pytest.raises(DataError, match="more than the 10008 bytes"):
        load_mnist("test", root=tmp_path, download=False)


def test_missing_file_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _serve({}, calls := []))
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError) as e:
        load_mnist("test", root=tmp_path, download=False)
    msg = _assert_one_line(e.value)
    assert f"{TEST_IMAGES}.gz" in msg and str(tmp_path / "mnist") in msg
    assert f"{MNIST_URLS[0]}{TEST_IMAGES}.gz" in msg and "download=True" in msg
    assert calls == []


def test_missing_file_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(DataError) as e:
        load_mnist("test", root=tmp_path)
    msg = _assert_one_line(e.value)
    assert f"{TEST_IMAGES}.gz is missing from {tmp_path / 'mnist'}" in msg
    assert all(u + f"{TEST_IMAGES}.gz" in msg for u in MNIST_URLS)
    assert "network is unreachable" in msg
    assert not (tmp_path / "mnist").exists()  # the folder it made for the download is removed


def test_download_verifies_then_replaces(tmp_path, monkeypatch):
    served = {f"{n}.gz": (SHARED / f"{n}.gz").read_bytes() for n in (TEST_IMAGES, TEST_LABELS)}
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", _serve(served, calls))
    x, y = load_mnist("test", root=tmp_path)
    assert x.shape == (10_000, 28, 28) and y[0] == 7
    assert calls == [MNIST_URLS[0] + name for name in served]
    d = tmp_path / "mnist"
    assert sorted(p.name for p in d.iterdir()) == sorted(served)
    assert (d / f"{TEST_LABELS}.gz").read_bytes() == served[f"{TEST_LABELS}.gz"]


def test_download_falls_back_to_second_mirror(tmp_path, monkeypatch):
    served = {f"{n}.gz": (SHARED / f"{n}.gz").read_bytes() for n in (TEST_IMAGES, TEST_LABELS)}
    calls: list[str] = []
    serve = _serve(served, calls)

    def urlopen(url, timeout=None):
        if url.startswith(MNIST_URLS[0]):
            calls.append(url)
            raise urllib.error.URLError("mirror down (test)")
        return serve(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    _, y = load_mnist("test", root=tmp_path)
    assert y.shape == (10_000,)
    assert calls == [m + f"{TEST_IMAGES}.gz" for m in MNIST_URLS] + [
        m + f"{TEST_LABELS}.gz" for m in MNIST_URLS
    ]


def test_corrupted_download_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    _test_split_copy(tmp_path)
    d = tmp_path / "mnist"
    (d / f"{TEST_LABELS}.gz").unlink()
    data = bytearray(_content(TEST_LABELS))
    data[100] ^= 1
    served = {f"{TEST_LABELS}.gz": gzip.compress(bytes(data), compresslevel=1)}
    monkeypatch.setattr(urllib.request, "urlopen", _serve(served, calls := []))
    with pytest.raises(DataError, match="SHA-256") as e:
        load_mnist("test", root=tmp_path)
    msg = _assert_one_line(e.value)
    assert f"{TEST_LABELS}.gz is missing from {d}" in msg
    assert len(calls) == len(MNIST_URLS)
    assert sorted(p.name for p in d.iterdir()) == [f"{TEST_IMAGES}.gz"]
