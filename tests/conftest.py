"""Fixtures shared by the test files."""

import pytest


@pytest.fixture
def one_torch_thread():
    """torch with one intra-op thread for the test (small tensors: more threads only add
    overhead and stall on busy machines); the previous setting is restored after."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
