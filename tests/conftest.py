"""Shared fixtures for the udesci test suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one torch intra-op thread (restored afterwards).

    The test machine has two shared cores: a second thread only adds synchronisation on the tiny
    tensors these tests use, and a single thread makes reductions run in one fixed order, so runs
    that must be bit-for-bit reproducible are.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
