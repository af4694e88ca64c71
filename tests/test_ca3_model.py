"""CA3 content-addressable memory: task API, generalisation beyond the authors' testbench, and
its measured limitations (see docs/models/ca3_cam.md)."""

from __future__ import annotations

import numpy as np
import pytest

from neuromem.errors import SpecError
from neuromem.models.ca3_cam import CA3Memory

# ------------------------------------------------------------------ CA3 acceptance test
N_CUES, N_BITS = 16, 32


def _stored_contents(seed=2024):
    rng = np.random.default_rng(seed)
    contents = np.zeros((N_CUES, N_BITS), bool)
    for cue in range(N_CUES):
        contents[cue, rng.choice(N_BITS, size=int(rng.integers(3, 9)), replace=False)] = True
    return contents


def _learn_all(contents, backend="numba"):
    mem = CA3Memory(N_CUES, N_BITS, backend=backend)
    for cue, content in enumerate(contents):
        mem.learn(cue, content)
    return mem


def _check(mem, contents, fragments):
    """Recall by every cue, then by each fragment; returns the list of mismatches."""
    wrong = []
    for cue in range(N_CUES):
        got = mem.recall(cue=cue)
        if not np.array_equal(got, contents[cue]):
            wrong.append(
                ("cue", cue, np.flatnonzero(got).tolist(), np.flatnonzero(contents[cue]).tolist())
            )
    for frag in fragments:
        got = mem.recall(content=list(frag))
        expected = contents[:, list(frag)].any(axis=1)  # OR semantics
        if not np.array_equal(got, expected):
            wrong.append(
                (
                    "content",
                    tuple(int(b) for b in frag),
                    np.flatnonzero(got).tolist(),
                    np.flatnonzero(expected).tolist(),
                )
            )
    return wrong


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_ca3_recall_by_cue_and_single_bits(backend):
    """Generalisation beyond the testbench: 16 random contents of 32 bits (3-8 bits set), each
    recalled by its cue (exact content) and by every single-bit fragment (exactly the cues
    whose content has that bit)."""
    contents = _stored_contents()
    mem = _learn_all(contents, backend)
    singles = [(b,) for cue in range(N_CUES) for b in np.flatnonzero(contents[cue])]
    assert _check(mem, contents, singles) == []


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_ca3_generalisation_by_cue_and_fragments(backend):
    """16 random contents of 32 bits; every cue recall exact; every single-bit fragment and one
    two-bit fragment per content return exactly the cues sharing a bit with it (OR)."""
    contents = _stored_contents()
    mem = _learn_all(contents, backend)
    rng = np.random.default_rng(1)
    singles = [(b,) for cue in range(N_CUES) for b in np.flatnonzero(contents[cue])]
    pairs = [
        tuple(rng.choice(np.flatnonzero(contents[cue]), 2, replace=False)) for cue in range(N_CUES)
    ]
    wrong = _check(mem, contents, singles + pairs)
    assert wrong == [], f"{len(wrong)} wrong recalls, first: {wrong[:3]}"


def test_published_stdp_two_bit_recall_corrupts_later_recalls():
    """With the published 3 ms windows a two-bit query potentiates cross pairs (pre spike in
    contCont, post spike in cueCont one step later); the identified windows do not."""
    mem = CA3Memory(5, 10, backend="numba", stdp="published")
    mem.learn(0, [0, 1])
    mem.learn(1, [0, 2])
    assert np.flatnonzero(mem.recall(content=[1])).tolist() == [0]
    assert np.flatnonzero(mem.recall(content=[0, 1])).tolist() == [0, 1]  # correct (OR)
    w = mem.sim.state["weights"]["contCont_cueCont"].reshape(10, 5)
    assert w[1, 1] == 6.0  # bit 1 -> cue 1 was learnt by recall
    assert np.flatnonzero(mem.recall(content=[1])).tolist() == [0, 1]  # now wrong
    assert np.flatnonzero(mem.recall(cue=1)).tolist() == [0, 2]  # cue direction intact


def test_ca3_overwrite_by_cue():
    """Re-learning a cue overwrites its content in the cue -> content direction."""
    mem = CA3Memory(5, 10, backend="numba")
    mem.learn(0, [1, 2, 3])
    mem.learn(1, [3, 4])
    mem.learn(0, [7, 8])
    assert np.flatnonzero(mem.recall(cue=0)).tolist() == [7, 8]
    assert np.flatnonzero(mem.recall(cue=1)).tolist() == [3, 4]
    assert np.flatnonzero(mem.recall(content=[7])).tolist() == [0]


def test_ca3_overwrite_forgets_old_content_to_cue_association():
    mem = CA3Memory(5, 10, backend="numba")
    mem.learn(0, [1, 2, 3])
    mem.learn(1, [3, 4])
    mem.learn(0, [7, 8])
    assert np.flatnonzero(mem.recall(content=[1])).tolist() == []
    assert np.flatnonzero(mem.recall(content=[3])).tolist() == [1]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.learn(5, [0]),  # cue out of range
        lambda m: m.learn(0, [10]),  # bit out of range
        lambda m: m.learn(0, []),  # empty content
        lambda m: m.recall(),  # neither cue nor content
        lambda m: m.recall(cue=0, content=[1]),  # both
        lambda m: m.learn(True, [1]),  # a bool is not a cue
    ],
)
def test_ca3_bad_operations_are_refused(call):
    mem = CA3Memory(5, 10, backend="numba")
    with pytest.raises(SpecError, match="CA3 memory"):
        call(mem)
    assert mem.sim.t == 0  # nothing was run


def test_published_stdp_does_not_forget_content_to_cue():
    """Why the identified windows are the default: with the published ones, re-learning leaves
    the old content -> cue pairs potentiated (the old bits' glitch spike at t0+4 is depressed by
    the cue's spike at t0+3 and re-potentiated by the one at t0+5)."""
    mem = CA3Memory(5, 10, backend="numba", stdp="published")
    mem.learn(0, [1, 2, 3])
    mem.learn(0, [7, 8])
    assert np.flatnonzero(mem.recall(content=[1])).tolist() == [0]  # should be []


def test_unknown_stdp_variant_is_refused():
    with pytest.raises(SpecError, match="unknown STDP variant 'fast'"):
        CA3Memory(5, 10, stdp="fast")
