"""Shared pytest setup: root-only tests skip themselves when not run as root; the real
containerd fixtures (tests/support/fixtures.py) are available to every test; and no test
may skip because a file is missing (the repository must hold everything a test needs:
a run that skipped one for that fails, naming it)."""

from __future__ import annotations

import os
import re

import pytest

pytest_plugins = ["tests.support.fixtures"]

MISSING_FILE = re.compile(
    r"not found|no such file|does not exist|missing file|\.\./"
    r"|shared/(?:vendor-specs|reference|seeds)",
    re.IGNORECASE,
)
"""What a skip reason says when a test did not find a file it needs."""
_missing: list[tuple[str, str]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (real cgroups, namespaces, containerd)")
    for item in items:
        if "root" in item.keywords or "containerd" in item.keywords:
            item.add_marker(skip)


def skip_reason(report: pytest.TestReport) -> str | None:
    """The reason of a skipped (not xfailed) test, else None."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    reason = skip_reason(report)
    if reason is not None and MISSING_FILE.search(reason):
        _missing.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _missing:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{nodeid}: {reason}" for nodeid, reason in _missing]
    if reporter is not None:
        reporter.write_line("skipped for a missing file (the repository must hold it):")
        for line in lines:
            reporter.write_line(f"  {line}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
