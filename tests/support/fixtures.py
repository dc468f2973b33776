"""Fixtures for tests against a real containerd (see tests/support/containerd.py for the API)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from tests.support.containerd import Containerd, ContainerdPod, burner_argv, skip_reason


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """A private containerd daemon for the whole session, torn down at the end."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # A short base path: containerd's sockets live in it (unix paths max 107 bytes).
    with tempfile.TemporaryDirectory(prefix="ri-ctd-", dir="/tmp") as base:
        daemon = Containerd.start(base)
        try:
            yield daemon
        finally:
            daemon.close()


@pytest.fixture(scope="session")
def containerd_pod(containerd: Containerd) -> ContainerdPod:
    """``default/ri-demo``: a pause sandbox, ``app`` (sleeps) and ``burner`` (burns CPU)."""
    return containerd.run_pod(
        "default",
        "ri-demo",
        {"app": ["/bin/sleep", "100000"], "burner": burner_argv()},
    )
