"""SHD loading (on a tiny file in the official layout), SHD-Adding and the synthetic tasks."""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error

import h5py
import numpy as np
import pytest
import torch

from neuromem.datasets import (
    SHD_MD5,
    DelayedRecall,
    bin_spikes,
    delayed_recall,
    load_shd,
    shd_adding,
    shd_path,
    spike_adding,
)
from neuromem.datasets import shd as shd_module
from neuromem.errors import DataError

# Three samples: (times in s, channels, label). Label 13 is English "three".
SAMPLES = [
    ([0.0005, 0.0015, 0.0019, 0.0031], [0, 5, 5, 699], 3),
    ([0.0100, 0.0001], [2, 2], 13),
    ([0.0042, 0.0500], [1, 3], 19),  # 0.05 s is beyond max_time_ms=5 and is dropped
]


def _write_shd(path, samples=SAMPLES):
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
        u = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (times, units, _) in enumerate(samples):
            t[i] = np.asarray(times, dtype=np.float16)
            u[i] = np.asarray(units, dtype=np.uint16)
        f.create_dataset("labels", data=np.array([s[2] for s in samples], dtype=np.uint8))


@pytest.fixture
def shd_dir(tmp_path):
    """A directory with a gzipped tiny shd_train.h5 and its MD5."""
    raw = tmp_path / "raw.h5"
    _write_shd(raw)
    gz = tmp_path / "shd" / "shd_train.h5.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    md5 = hashlib.md5(gz.read_bytes()).hexdigest()
    return gz.parent, {"shd_train.h5.gz": md5}


def test_official_checksums_recorded():
    assert set(SHD_MD5) == {"shd_train.h5.gz", "shd_test.h5.gz", "shd_train.h5", "shd_test.h5"}
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in SHD_MD5.values())


def test_load_decompresses_and_bins(shd_dir):
    root, sums = shd_dir
    x, y = load_shd("train", root=root, dt_ms=1.0, max_time_ms=5.0, checksums=sums)
    assert (root / "shd_train.h5").is_file()
    assert x.shape == (3, 5, 700) and x.dtype == torch.float32
    assert y.tolist() == [3, 13, 19] and y.dtype == torch.int64
    assert (y % 10).tolist() == [3, 3, 9]
    # sample 0: t=0.5 ms -> bin 0 ch 0; 1.5 and 1.9 ms -> bin 1 ch 5 (count 2); 3.1 ms -> bin 3
    assert x[0, 0, 0] == 1 and x[0, 1, 5] == 2 and x[0, 3, 699] == 1
    assert x[0].sum() == 4
    # sample 1: 10 ms is past the window; 0.1 ms -> bin 0 ch 2
    assert x[1].sum() == 1 and x[1, 0, 2] == 1
    # sample 2: 4.2 ms -> bin 4 ch 1; 50 ms dropped
    assert x[2].sum() == 1 and x[2, 4, 1] == 1


def test_binary_option_and_bin_width(shd_dir):
    root, sums = shd_dir
    xb, _ = load_shd(
        "train",
        root=root,
        dt_ms=1.0,
        max_time_ms=5.0,
        binary=True,
        dtype=torch.bool,
        checksums=sums,
    )
    assert xb.dtype == torch.bool and xb[0, 1, 5] and int(xb[0].sum()) == 3
    x2, _ = load_shd("train", root=root, dt_ms=2.0, max_time_ms=20.0, checksums=sums)
    assert x2.shape == (3, 10, 700)
    assert x2[0, 0, 0] == 1 and x2[0, 0, 5] == 2 and x2[0, 1, 699] == 1
    assert x2[1, 5, 2] == 1  # 10 ms now inside the window


def test_bin_spikes_matches_loop():
    rng = np.random.default_rng(1)
    times = [rng.random(50) * 0.1 for _ in range(5)]
    units = [rng.integers(0, 700, 50) for _ in range(5)]
    x = bin_spikes(times, units, dt_ms=4.0, max_time_ms=100.0, chunk=2)
    ref = np.zeros((5, 25, 700))
    for s in range(5):
        for t, u in zip(times[s], units[s], strict=True):
            ref[s, int(t * 1000 // 4.0), u] += 1
    np.testing.assert_array_equal(x.numpy(), ref)


def test_indices_subset(shd_dir):
    root, sums = shd_dir
    x, y = load_shd("train", root=root, dt_ms=1.0, max_time_ms=5.0, indices=[2, 0], checksums=sums)
    assert y.tolist() == [19, 3] and x[1, 1, 5] == 2


def test_checksum_mismatch_names_path(shd_dir):
    root, _ = shd_dir
    with pytest.raises(DataError, match="shd_train.h5.gz") as e:
        load_shd("train", root=root, checksums={"shd_train.h5.gz": "0" * 32})
    assert str(root) in str(e.value) and "MD5" in str(e.value)
    # The official sums do not match the tiny file either.
    with pytest.raises(DataError, match="expected " + SHD_MD5["shd_train.h5.gz"]):
        shd_path("train", root=root)


def test_decompressed_file_checked_when_known(shd_dir):
    root, sums = shd_dir
    load_shd("train", root=root, checksums=sums)
    with pytest.raises(DataError, match=str(root / "shd_train.h5")):
        shd_path("train", root=root, checksums={**sums, "shd_train.h5": "f" * 32})


def test_unknown_checksum_refused(shd_dir):
    root, _ = shd_dir
    with pytest.raises(DataError, match="no known MD5"):
        shd_path("train", root=root, checksums={})


def test_missing_file_without_download(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("network used without download=True")

    monkeypatch.setattr(shd_module.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="shd_test.h5.gz"):
        load_shd("test", root=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_shd("test", root=tmp_path / "nowhere")
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)
    with pytest.raises(DataError, match="NEUROMEM_DATA"):
        load_shd("test")
    monkeypatch.setenv("NEUROMEM_DATA", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path / "shd")):
        load_shd("test")
    with pytest.raises(DataError, match="unknown SHD split"):
        load_shd("valid", root=tmp_path)


def test_download_offline_is_a_data_error(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(shd_module.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="could not download .*shd_test.h5.gz"):
        load_shd("test", root=tmp_path / "shd", download=True)
    assert not list((tmp_path / "shd").iterdir())  # no partial file left


def test_download_then_verify(tmp_path, monkeypatch):
    raw = tmp_path / "raw.h5"
    _write_shd(raw)
    payload = gzip.compress(raw.read_bytes())
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(shd_module.urllib.request, "urlopen", fake_urlopen)
    sums = {"shd_test.h5.gz": hashlib.md5(payload).hexdigest()}
    x, y = load_shd("test", root=tmp_path / "d", download=True, max_time_ms=20, checksums=sums)
    assert urls == ["https://zenkelab.org/datasets/shd_test.h5.gz"]
    assert y.tolist() == [3, 13, 19] and x.shape == (3, 2, 700)
    # A second load uses the local file.
    load_shd("test", root=tmp_path / "d", download=True, checksums=sums)
    assert len(urls) == 1


def test_shd_adding_labels_and_layout(shd_dir):
    root, sums = shd_dir
    x, y = load_shd("train", root=root, dt_ms=1.0, max_time_ms=5.0, checksums=sums)
    xa, ya, pairs = shd_adding(x, y, n_pairs=10, seed=3, return_pairs=True)
    assert xa.shape == (10, 10, 700) and pairs.shape == (10, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    assert torch.equal(ya, y[i] % 10 + y[j] % 10)
    assert torch.equal(xa[:, :5], x[i]) and torch.equal(xa[:, 5:], x[j])
    assert ya.min() >= 0 and ya.max() <= 18
    assert sorted(i[:3].tolist()) == [0, 1, 2]  # first index sweeps a permutation
    xb, yb, pb = shd_adding(x, y, n_pairs=10, seed=3, return_pairs=True)
    assert torch.equal(pb, pairs) and torch.equal(yb, ya)
    _, _, pc = shd_adding(x, y, n_pairs=10, seed=4, return_pairs=True)
    assert not torch.equal(pc, pairs)


def test_shd_adding_covers_all_sums():
    labels = torch.arange(20)
    x = torch.zeros(20, 1, 700)
    _, y = shd_adding(x, labels, n_pairs=2000, seed=0)
    assert set(y.tolist()) == set(range(19))


# --- synthetic delayed recall ---------------------------------------------------------------


def test_delayed_recall_shapes_and_determinism():
    task = DelayedRecall(n_classes=4, n_signal=16, n_recall=2, cue_len=10, delay=300)
    x, y = task.sample(64, seed=1)
    assert x.shape == (64, 10 + 300 + 10, 18) and x.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert task.n_in == 18 and task.horizon == 310 and task.chance == 0.25
    x2, y2 = delayed_recall(64, seed=1, n_classes=4, n_signal=16, cue_len=10, delay=300)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, y3 = task.sample(64, seed=2)
    assert not torch.equal(x, x3)
    # Patterns are a property of the task, not of the batch seed.
    assert np.array_equal(task.patterns(), DelayedRecall(n_signal=16, cue_len=10).patterns())


def test_delayed_recall_label_balance():
    x, y = delayed_recall(100, seed=0, n_classes=5)
    assert torch.bincount(y, minlength=5).tolist() == [20] * 5
    _, y = delayed_recall(103, seed=0, n_classes=4)
    counts = torch.bincount(y, minlength=4)
    assert counts.max() - counts.min() <= 1


def test_recall_channels_only_in_recall_window():
    task = DelayedRecall(delay=50, noise_rate=0.3)
    x, _ = task.sample(8, seed=0)
    rec = x[:, :, task.n_signal :]
    assert rec[:, task.recall_window].eq(1).all()
    assert rec[:, : task.recall_window.start].eq(0).all()


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y, n_classes):
    cent = torch.stack([train_x[train_y == c].mean(0) for c in range(n_classes)])
    pred = torch.cdist(test_x, cent).argmin(1)
    return (pred == test_y).float().mean().item()


def test_cue_carries_label_delay_and_recall_do_not():
    task = DelayedRecall(n_classes=4, n_signal=32, cue_len=20, delay=100, noise_rate=0.05)
    xtr, ytr = task.sample(800, seed=10)
    xte, yte = task.sample(800, seed=11)
    windows = {"cue": task.cue_window, "delay": task.delay_window, "recall": task.recall_window}
    acc = {}
    for name, w in windows.items():
        ftr = xtr[:, w].flatten(1)
        fte = xte[:, w].flatten(1)
        acc[name] = _nearest_centroid_accuracy(ftr, ytr, fte, yte, 4)
    assert acc["cue"] > 0.95
    # chance is 0.25; 800 test samples give a standard error of about 0.015
    assert abs(acc["delay"] - 0.25) < 0.08 and abs(acc["recall"] - 0.25) < 0.08
    # The class-conditional mean rate of the delay window is the noise rate for every class.
    for c in range(4):
        rate = xtr[ytr == c][:, task.delay_window, : task.n_signal].mean().item()
        assert abs(rate - task.noise_rate) < 0.005
    pats = task.patterns()
    assert all(not np.array_equal(pats[a], pats[b]) for a in range(4) for b in range(a))


def test_delayed_recall_validates():
    with pytest.raises(ValueError, match="n_classes"):
        DelayedRecall(n_classes=1)
    with pytest.raises(ValueError, match="noise_rate"):
        DelayedRecall(noise_rate=1.5)


def test_spike_adding():
    x, t = spike_adding(32, n_steps=50, n_value=8, seed=0)
    assert x.shape == (32, 50, 9) and t.shape == (32,)
    marker = x[:, :, -1]
    assert marker.sum(1).eq(2).all()
    assert marker[:, :25].sum(1).eq(1).all()
    idx = marker.nonzero()
    frac = x[idx[:, 0], idx[:, 1], :-1].mean(1).view(32, 2).sum(1)
    assert torch.allclose(frac, t)
    x2, t2 = spike_adding(32, n_steps=50, n_value=8, seed=0)
    assert torch.equal(x, x2) and torch.equal(t, t2)
