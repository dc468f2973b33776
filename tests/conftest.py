"""Shared pytest setup: root-only tests skip themselves when not run as root; the real
containerd fixtures (tests/support/fixtures.py) are available to every test."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.fixtures"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (real cgroups, namespaces, containerd)")
    for item in items:
        if "root" in item.keywords or "containerd" in item.keywords:
            item.add_marker(skip)
