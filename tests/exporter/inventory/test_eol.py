"""The end-of-life table: which cycle a fingerprinted version is, and when it is past.

Expected dates are endoflife.date's (the pages exporter/inventory/eol.py names); the
version strings are the fingerprints' own forms (docs/insights-runtime-extractor.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from exporter.inventory.eol import java_cycle, kind_cycle, past_end_of_life


@pytest.mark.parametrize(
    ("kind", "version", "cycle"),
    [
        ("Python", "Python 3.9.19", "3.9"),
        ("Python", "Python 2.7.18", "2.7"),
        ("Node.js", "v22.6.0", "22"),
        ("Golang", "go1.22.6", "1.22"),
        ("Golang", "go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime", "1.21"),
    ],
)
def test_kind_versions_map_to_release_cycles(kind: str, version: str, cycle: str) -> None:
    found = kind_cycle(kind, version)
    assert found is not None and found[1] == cycle


@pytest.mark.parametrize(
    ("version", "cycle"), [("17.0.13", "17"), ("1.8.0_412", "8"), ("21", "21"), ("x", None)]
)
def test_java_versions_map_to_feature_releases(version: str, cycle: str | None) -> None:
    assert java_cycle(version) == cycle


def _components(fingerprint: Mapping[str, object], on: str) -> list[str]:
    return [e.component for e in past_end_of_life(fingerprint, date.fromisoformat(on))]


def test_flagged_only_after_the_last_supported_day() -> None:
    python39 = {"kind": "Python", "kindVersion": "Python 3.9.19"}  # eol 2025-10-31
    assert _components(python39, "2025-10-31") == []
    assert _components(python39, "2025-11-01") == ["Python 3.9"]


def test_every_component_is_judged() -> None:
    fingerprint = {
        "os": "debian", "osVersion": "11", "kind": "Java", "kindVersion": "11.0.25",
        "kindImplementer": "Red Hat, Inc.",
        "runtimes": [{"name": "Spring Boot", "version": "2.7.18"},
                     {"name": "Apache Tomcat", "version": "9.0.87"}],
    }  # fmt: skip
    assert _components(fingerprint, "2026-12-03") == [
        "Red Hat build of OpenJDK 11",  # 2024-10-31
        "Debian 11",  # 2024-08-14
        "Spring Boot 2.7",  # 2023-06-30; Tomcat 9.0 runs to 2027-03-31
    ]


def test_the_vendor_decides_a_jdks_end_of_life() -> None:
    """Java 11: Red Hat's ended 2024-10-31, Temurin's runs to 2027-10-31; a vendor the
    table does not carry is not judged."""
    on = "2026-12-03"
    base = {"kind": "Java", "kindVersion": "11.0.25"}
    assert _components({**base, "kindImplementer": "Red Hat, Inc."}, on) != []
    assert _components({**base, "kindImplementer": "Eclipse Adoptium"}, on) == []
    assert _components({**base, "kindImplementer": "Azul Systems, Inc."}, on) == []
    assert _components(base, on) == []


def test_unknown_cycles_and_vendor_builds_are_not_judged() -> None:
    on = "2026-12-03"
    assert _components({"kind": "Python", "kindVersion": "Python 3.99.0"}, on) == []
    assert _components({"kind": "Golang", "kindVersion": "go1.26.1"}, on) == []  # no date yet
    quarkus = {"kind": "Java", "runtimes": [{"name": "Quarkus", "version": "3.8.6.redhat-00004"}]}
    assert _components(quarkus, on) == []
    community = {"kind": "Java", "runtimes": [{"name": "Quarkus", "version": "3.8.6"}]}
    assert _components(community, on) == ["Quarkus 3.8"]
    assert _components({"os": "alpine", "osVersion": "3.20.2"}, on) == ["Alpine Linux 3.20"]
    assert _components({"os": "rhel", "osVersion": "8.10"}, on) == []
