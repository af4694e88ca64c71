"""save is atomic: killed at any moment, the target holds the old or the new network, and the
next save removes what the killed one left (and nothing else)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from neuromem.errors import SpecError
from neuromem.spec import (
    Discretization,
    Network,
    Population,
    Projection,
    fixed_probability,
    if_curr_exp,
    load,
    save,
    spike_source,
)
from neuromem.spec import io as spec_io

ROOT = Path(__file__).resolve().parents[1]


def big_network(name: str, seed: int, n: int = 1000, p: float = 0.125) -> Network:
    """About 4 MB of arrays (125k synapses), so that a save takes some ms."""
    rng = np.random.default_rng(seed)
    pre, post = fixed_probability(n, n, p, seed=seed)
    pops = (
        Population("src", n, spike_source()),
        Population("dst", n, if_curr_exp(), {"tau_m": rng.uniform(5.0, 25.0, n)}),
    )
    proj = Projection(
        "p", "src", "dst", pre, post, rng.uniform(0.0, 1.0, pre.size), rng.integers(1, 8, pre.size)
    )
    return Network(name, Discretization(dt=0.1), pops, (proj,))


def fingerprint(net: Network) -> str:
    """Hash of the saved form: the document (floats by repr, so bit-exact) and every array's
    key, dtype, shape and bytes."""
    doc, arrays = spec_io.to_dict(net)
    h = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE
    )


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Networks A and B, their fingerprints, and reference saves the children load."""
    d = tmp_path_factory.mktemp("refs")
    a, b = big_network("a", 1), big_network("b", 2)
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa != fb
    return {"a": a, "b": b, "fa": fa, "fb": fb, "A": save(a, d / "A"), "B": save(b, d / "B")}


# ------------------------------------------------------------------ random kills
SAVE_LOOP = r"""
import sys
from neuromem.spec import load, save
from neuromem.spec.io import atomic
a_dir, b_dir, target, mode = sys.argv[1:5]
atomic.USE_RENAMEAT2 = mode == "renameat2"
nets = [load(a_dir), load(b_dir)]
print("ready", flush=True)
i = 0
while True:
    save(nets[i % 2], target, overwrite=True)
    i += 1
"""

KILLS = 30


def test_killed_save_loop_leaves_the_old_or_the_new_network(tmp_path, nets):
    """A subprocess saves A and B alternately over one target and is SIGKILLed at random
    (seeded) times, 30 times (2 in 3 with renameat2, 1 in 3 with the two-rename fallback).
    After each kill load returns A or B bit for bit, and after the next save only the target
    is left in its directory."""
    work = tmp_path / "work"
    target = work / "net"
    save(nets["a"], target)
    t0 = time.perf_counter()
    for net in (nets["b"], nets["a"], nets["b"], nets["a"]):
        save(net, target, overwrite=True)
    t_save = (time.perf_counter() - t0) / 4
    rng = random.Random(11)
    outcomes: Counter[str] = Counter()
    for k in range(KILLS):
        mode = "two-renames" if k % 3 == 2 else "renameat2"
        proc = _child(SAVE_LOOP, nets["A"], nets["B"], target, mode)
        try:
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 5 * t_save))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, "the save loop ended by itself"
        if len(os.listdir(work)) > 1:
            outcomes["left side directories"] += 1
        got = fingerprint(load(target))
        assert got in (nets["fa"], nets["fb"]), f"kill {k} ({mode}): neither A nor B"
        outcomes["A" if got == nets["fa"] else "B"] += 1
        save(nets["a"], target, overwrite=True)
        assert os.listdir(work) == ["net"], f"kill {k} ({mode}): left {os.listdir(work)}"
    print(f"save {t_save * 1e3:.1f} ms, outcomes {dict(outcomes)}")
    assert outcomes["A"] and outcomes["B"], outcomes
    # the kills hit saves in progress (else this test would prove nothing)
    assert outcomes["left side directories"] >= KILLS // 3, outcomes


# ------------------------------------------------------------------ every crash point
STEPS = [
    ("os", "mkdir"),
    ("os", "rename"),
    ("os", "unlink"),
    ("os", "rmdir"),
    ("atomic", "renameat2"),
    ("atomic", "fsync_dir"),
    ("atomic", "fsync_file"),
    ("np", "savez"),
]


def _save_crashing_at(net: Network, target: Path, crash_at: int) -> list[str] | None:
    """Save ``net`` over ``target`` in a forked process that exits abruptly (``os._exit``)
    before its ``crash_at``-th file-system step; the list of steps when it got through."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no cleanup of any kind runs after os._exit
        try:
            os.close(r)
            steps: list[str] = []

            def step(name, fn):
                def wrapped(*args, **kwargs):
                    if len(steps) == crash_at:
                        os._exit(17)
                    steps.append(name)
                    return fn(*args, **kwargs)

                return wrapped

            mods = {"os": os, "atomic": spec_io.atomic, "np": np}
            for mod, name in STEPS:
                setattr(mods[mod], name, step(name, getattr(mods[mod], name)))
            save(net, target, overwrite=True)
            os.write(w, " ".join(steps).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 17), code
    return out.split() if code == 0 else None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("mode", ["renameat2", "two-renames"])
def test_a_crash_at_any_step_of_a_save_is_recovered(tmp_path, monkeypatch, mode):
    """The save of B over A exits abruptly before its first, second, ... file-system step.
    load returns A up to the swap and B from it on (with the two-rename fallback also when
    the crash falls between the two renames: load then renames B into place), and the next
    save leaves only the target."""
    monkeypatch.setattr(spec_io.atomic, "USE_RENAMEAT2", mode == "renameat2")
    a, b = big_network("a", 1, n=50, p=0.2), big_network("b", 2, n=50, p=0.2)
    fa, fb = fingerprint(a), fingerprint(b)
    work = tmp_path / "work"
    target = work / "net"
    seq, missing = [], []
    for k in range(40):
        save(a, target, overwrite=True)
        steps = _save_crashing_at(b, target, k)
        if steps is not None:
            break
        missing.append(not os.path.lexists(target))
        got = fingerprint(load(target))
        assert got in (fa, fb), f"crash before step {k}: neither A nor B"
        seq.append("A" if got == fa else "B")
        assert os.path.isdir(target), "load did not put the recovered save in place"
        save(a, target, overwrite=True)
        assert os.listdir(work) == ["net"], f"crash before step {k}: left {os.listdir(work)}"
    else:
        raise AssertionError("the save did not finish in 40 steps")
    assert len(seq) == len(steps) >= 10, steps
    assert assert_a_then_b(seq), (seq, steps)
    if mode == "renameat2":
        assert steps.count("renameat2") == 1 and not any(missing), (steps, missing)
    else:
        # exactly one crash point (between "old aside" and "new in") had no target
        assert sum(missing) == 1 and seq[missing.index(True)] == "B", (steps, missing)


def assert_a_then_b(seq: list[str]) -> bool:
    return "A" in seq and "B" in seq and seq == sorted(seq)


# ------------------------------------------------------------------ the protocol
def test_save_fsyncs_files_and_directories_before_each_rename(tmp_path, monkeypatch, nets):
    target = save(nets["a"], tmp_path / "net")
    log = []

    def logged(name, fn, show):
        def wrapped(*args, **kwargs):
            log.append((name, *show(*args)))
            return fn(*args, **kwargs)

        return wrapped

    base = os.path.basename
    atomic = spec_io.atomic
    monkeypatch.setattr(
        atomic, "fsync_file", logged("fsync", atomic.fsync_file, lambda f: [base(f.name)])
    )
    monkeypatch.setattr(atomic, "fsync_dir", logged("fsync", atomic.fsync_dir, lambda p: [base(p)]))
    monkeypatch.setattr(
        atomic,
        "renameat2",
        logged("renameat2", atomic.renameat2, lambda s, d, f: [base(s), base(d), f]),
    )
    save(nets["b"], target, overwrite=True)
    monkeypatch.undo()
    shown = [tuple(str(x).split("-")[0] for x in e) for e in log]
    assert shown == [
        ("fsync", "network.json"),
        ("fsync", "arrays.npz"),
        ("fsync", ".net.tmp"),
        ("fsync", base(tmp_path)),  # after renaming .net.tmp-* to .net.new-*
        ("renameat2", ".net.new", "net", "2"),  # RENAME_EXCHANGE
        ("fsync", base(tmp_path)),
    ]
    assert fingerprint(load(target)) == nets["fb"]
    assert os.listdir(tmp_path) == ["net"]


# ------------------------------------------------------------------ recovery by load
def _copy_save(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in ("network.json", "arrays.npz"):
        (dst / f).write_bytes((src / f).read_bytes())
    return dst


def test_load_rolls_an_interrupted_swap_forward(tmp_path, nets):
    """A saver died between its two renames: the target is missing, the old save is aside
    and the new one complete. load returns the new one and puts it in place."""
    pid = dead_pid()
    _copy_save(nets["A"], tmp_path / f".net.old-{pid}-0000000a")
    _copy_save(nets["B"], tmp_path / f".net.new-{pid}-0000000a")
    assert fingerprint(load(tmp_path / "net")) == nets["fb"]
    assert sorted(os.listdir(tmp_path)) == [f".net.old-{pid}-0000000a", "net"]
    save(nets["a"], tmp_path / "net", overwrite=True)
    assert os.listdir(tmp_path) == ["net"]


def test_load_falls_back_to_the_old_save_without_a_new_one(tmp_path, nets):
    pid = dead_pid()
    _copy_save(nets["A"], tmp_path / f".net.old-{pid}-0000000b")
    assert fingerprint(load(tmp_path / "net")) == nets["fa"]
    assert os.listdir(tmp_path) == ["net"]


def test_load_reads_through_the_swap_of_a_live_saver(tmp_path, nets):
    """While the saver still runs (here: the parent of this process), load reads its new
    save where it is and moves nothing; save leaves its files alone too."""
    pid = os.getppid()
    old = _copy_save(nets["A"], tmp_path / f".net.old-{pid}-0000000c")
    new = _copy_save(nets["B"], tmp_path / f".net.new-{pid}-0000000c")
    assert fingerprint(load(tmp_path / "net")) == nets["fb"]
    assert sorted(os.listdir(tmp_path)) == sorted([old.name, new.name])
    save(nets["a"], tmp_path / "net")
    assert sorted(os.listdir(tmp_path)) == sorted([old.name, new.name, "net"])


def test_partial_and_deleted_side_directories_are_never_loaded(tmp_path, nets):
    """``tmp`` (maybe partial) and ``del`` (being deleted) directories are not candidates,
    nor an incomplete ``new``: the target is simply not found."""
    pid = dead_pid()
    _copy_save(nets["B"], tmp_path / f".net.tmp-{pid}-0000000d")
    _copy_save(nets["B"], tmp_path / f".net.del-{pid}-0000000d")
    (_copy_save(nets["B"], tmp_path / f".net.new-{pid}-0000000e") / "arrays.npz").unlink()
    with pytest.raises(SpecError, match=r"net/network.json not found"):
        load(tmp_path / "net")
    save(nets["a"], tmp_path / "net")
    assert os.listdir(tmp_path) == ["net"]


# ------------------------------------------------------------------ what cleanup may delete
def test_cleanup_deletes_only_leftovers_of_dead_savers_of_this_target(tmp_path, nets):
    dead, alive = dead_pid(), os.getppid()
    target = save(nets["a"], tmp_path / "net")
    outside = _copy_save(nets["A"], tmp_path / "outside")
    partial = tmp_path / f".net.tmp-{dead}-00000001"
    partial.mkdir()
    (partial / "network.json").write_text('{"format": "neuromem-net')
    removed = [
        partial.name,
        _copy_save(nets["A"], tmp_path / f".net.new-{dead}-00000002").name,
        _copy_save(nets["A"], tmp_path / f".net.old-{dead}-00000003").name,
        _copy_save(nets["A"], tmp_path / f".net.del-{dead}-00000004").name,
    ]
    (tmp_path / f".net.del-{dead}-00000005").mkdir()
    removed.append(f".net.del-{dead}-00000005")
    kept = {
        "alive": _copy_save(nets["A"], tmp_path / f".net.tmp-{alive}-00000006"),
        "other file": _copy_save(nets["A"], tmp_path / f".net.tmp-{dead}-00000007"),
        "symlink": tmp_path / f".net.tmp-{dead}-00000008",
        "symlinked file": tmp_path / f".net.tmp-{dead}-00000009",
        "subdirectory": tmp_path / f".net.tmp-{dead}-0000000a",
        "other target": _copy_save(nets["A"], tmp_path / f".other.tmp-{dead}-0000000b"),
        "prefix target": _copy_save(nets["A"], tmp_path / f".ne.tmp-{dead}-0000000c"),
        "no dot": _copy_save(nets["A"], tmp_path / f"net.tmp-{dead}-0000000d"),
        "upper case": _copy_save(nets["A"], tmp_path / f".net.tmp-{dead}-0000000D"),
        "no pid": _copy_save(nets["A"], tmp_path / ".net.tmp-0000000e"),
        "other kind": _copy_save(nets["A"], tmp_path / f".net.bak-{dead}-0000000f"),
        "plain file": tmp_path / f".net.old-{dead}-00000010",
    }
    (kept["other file"] / "notes.txt").write_text("mine")
    kept["symlink"].symlink_to(outside, target_is_directory=True)
    kept["symlinked file"].mkdir()
    (kept["symlinked file"] / "network.json").symlink_to(outside / "network.json")
    kept["subdirectory"].mkdir()
    (kept["subdirectory"] / "arrays.npz").mkdir()
    (kept["subdirectory"] / "arrays.npz" / "data").write_text("mine")
    kept["plain file"].write_text("mine")
    before = {n: sorted(os.listdir(p)) for n, p in kept.items() if p.is_dir()}
    save(nets["b"], target, overwrite=True)
    assert fingerprint(load(target)) == nets["fb"]
    left = set(os.listdir(tmp_path))
    assert not left & set(removed), left & set(removed)
    assert left == {"net", "outside", *(p.name for p in kept.values())}
    assert {n: sorted(os.listdir(p)) for n, p in kept.items() if p.is_dir()} == before
    assert sorted(os.listdir(outside)) == ["arrays.npz", "network.json"]
    assert fingerprint(load(outside)) == nets["fa"]
    # and the next save leaves them alone as well
    save(nets["a"], target, overwrite=True)
    assert set(os.listdir(tmp_path)) == left


def test_overwrite_replaces_only_saved_networks(tmp_path, nets):
    """A file, a symlink or a directory with other files is refused, whatever overwrite
    says, and left as it was; an empty directory is replaced."""
    net = nets["a"]
    (tmp_path / "file").write_text("mine")
    mixed = _copy_save(nets["A"], tmp_path / "mixed")
    (mixed / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to(nets["A"], target_is_directory=True)
    for name, msg in [
        ("file", "is not a directory"),
        ("mixed", "holds files other than"),
        ("link", "is a symbolic link"),
    ]:
        with pytest.raises(FileExistsError, match=msg):
            save(net, tmp_path / name, overwrite=True)
    assert (tmp_path / "file").read_text() == "mine"
    assert sorted(os.listdir(mixed)) == ["arrays.npz", "network.json", "notes.txt"]
    assert os.readlink(tmp_path / "link") == str(nets["A"])
    assert fingerprint(load(nets["A"])) == nets["fa"]
    (tmp_path / "empty").mkdir()
    save(net, tmp_path / "empty", overwrite=True)
    assert fingerprint(load(tmp_path / "empty")) == nets["fa"]
    assert sorted(os.listdir(tmp_path)) == ["empty", "file", "link", "mixed"]


@pytest.mark.parametrize("name", [".net.tmp-123-0123abcd", ".x.del-9-ffffffff", ".."])
def test_save_refuses_targets_named_like_side_directories(tmp_path, nets, name):
    with pytest.raises(ValueError, match="cannot be the directory of a save"):
        save(nets["a"], tmp_path / name)


def test_fallback_without_renameat2_creates_and_refuses_like_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(spec_io.atomic, "USE_RENAMEAT2", False)
    net = big_network("small", 3, n=20, p=0.5)
    path = save(net, tmp_path / "x")
    with pytest.raises(FileExistsError, match="exists"):
        save(net, path)
    save(big_network("other", 4, n=20, p=0.5), path, overwrite=True)
    assert load(path).name == "other"
    assert os.listdir(tmp_path) == ["x"]
