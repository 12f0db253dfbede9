"""Shared fixtures for the udesci test suite."""

from __future__ import annotations

import os

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


# hypothesis profiles of the fuzz suite (tests/fuzz): "default" runs a modest, derandomized number of
# examples per property (CI is deterministic); "thorough" runs thousands (the slow copies of the
# properties, `pytest -m slow tests/fuzz`, select it themselves).  HYPOTHESIS_PROFILE picks the loaded one.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is in the dev extra; without it the fuzz modules skip themselves
    pass
else:
    _QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
    settings.register_profile(
        "default",
        max_examples=50,
        # 5 s per example: a hang is caught, while an example near the limit on a busy CI machine (a deep
        # nesting took just over 2 s once in the whole suite) does not fail the run by chance
        deadline=5000,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=_QUIET_CHECKS,
    )
    settings.register_profile(
        "thorough",
        max_examples=2000,
        deadline=5000,
        derandomize=False,
        database=None,
        print_blob=True,
        suppress_health_check=_QUIET_CHECKS,
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
