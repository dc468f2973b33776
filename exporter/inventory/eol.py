"""Upstream end-of-life dates of the runtimes, operating systems and frameworks the
fingerprints name, and which release cycle a fingerprinted version belongs to.

Why a table kept here: the inventory must flag what runs past its upstream support
without reaching the network. The dates are endoflife.date's (its repository's
``products/<product>.md`` at commit a70eca33, 2026-08-22; each entry names its page),
which follow each project's published release policy. A cycle the table does not list
(newer than the table, or a vendor whose policy it does not carry) is never flagged:
the report says "unknown", not "fine". Vendor builds with their own lifecycle (Red Hat
builds of Quarkus, Tomcat or Spring, marked ``redhat`` in their version) are not judged
by the upstream dates either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

TABLE_DATE = date(2026, 8, 22)
"""When the dates below were read."""
SOURCE = "https://endoflife.date/"


@dataclass(frozen=True)
class Product:
    """One endoflife.date product: its cycles and the day each stopped being supported
    (None: supported, no date set)."""

    page: str
    label: str
    cycles: dict[str, date | None]


def _d(text: str) -> date:
    return date.fromisoformat(text)


PYTHON = Product("python", "Python", {
    "2.7": _d("2020-01-01"), "3.6": _d("2021-12-23"), "3.7": _d("2023-06-27"),
    "3.8": _d("2024-10-07"), "3.9": _d("2025-10-31"), "3.10": _d("2026-10-31"),
    "3.11": _d("2027-10-31"), "3.12": _d("2028-10-31"), "3.13": _d("2029-10-31"),
    "3.14": _d("2030-10-31"),
})  # fmt: skip
NODEJS = Product("nodejs", "Node.js", {
    "12": _d("2022-04-30"), "14": _d("2023-04-30"), "16": _d("2023-09-11"),
    "17": _d("2022-06-01"), "18": _d("2025-04-30"), "19": _d("2023-06-01"),
    "20": _d("2026-04-30"), "21": _d("2024-06-01"), "22": _d("2027-04-30"),
    "23": _d("2025-06-01"), "24": _d("2028-04-30"), "25": _d("2026-06-01"),
    "26": _d("2029-04-30"),
})  # fmt: skip
GO = Product("go", "Go", {
    "1.18": _d("2023-02-01"), "1.19": _d("2023-09-06"), "1.20": _d("2024-02-06"),
    "1.21": _d("2024-08-13"), "1.22": _d("2025-02-11"), "1.23": _d("2025-08-12"),
    "1.24": _d("2026-02-10"), "1.25": _d("2026-08-19"), "1.26": None, "1.27": None,
})  # fmt: skip
TEMURIN = Product("eclipse-temurin", "Eclipse Temurin", {
    "8": _d("2030-12-31"), "11": _d("2027-10-31"), "16": _d("2021-09-30"),
    "17": _d("2027-10-31"), "18": _d("2022-09-30"), "19": _d("2023-03-31"),
    "20": _d("2023-09-19"), "21": _d("2029-12-31"), "22": _d("2024-09-17"),
    "23": _d("2025-03-18"), "24": _d("2025-09-16"), "25": _d("2031-09-30"),
    "26": _d("2026-09-15"),
})  # fmt: skip
RED_HAT_OPENJDK = Product("red-hat-build-of-openjdk", "Red Hat build of OpenJDK", {
    "8": _d("2026-11-30"), "11": _d("2024-10-31"), "17": _d("2027-12-31"),
    "21": _d("2029-12-31"), "25": _d("2030-12-31"),
})  # fmt: skip
SPRING_BOOT = Product("spring-boot", "Spring Boot", {
    "2.7": _d("2023-06-30"), "3.0": _d("2023-12-31"), "3.1": _d("2024-06-30"),
    "3.2": _d("2024-12-31"), "3.3": _d("2025-06-30"), "3.4": _d("2025-12-31"),
    "3.5": _d("2026-06-30"), "4.0": _d("2026-12-31"), "4.1": _d("2027-07-31"),
})  # fmt: skip
TOMCAT = Product("tomcat", "Apache Tomcat", {
    "8.5": _d("2024-03-31"), "9.0": _d("2027-03-31"), "10.0": _d("2022-10-31"),
    "10.1": None, "11.0": None,
})  # fmt: skip
QUARKUS = Product("quarkus-framework", "Quarkus", {
    "3.8": _d("2025-02-28"), "3.13": _d("2024-08-28"), "3.15": _d("2025-09-25"),
    "3.19": _d("2025-03-28"), "3.20": _d("2026-03-28"), "3.24": _d("2025-07-30"),
    "3.27": _d("2026-09-24"), "3.29": _d("2025-11-26"), "3.33": _d("2027-03-25"),
})  # fmt: skip
DEBIAN = Product("debian", "Debian", {
    "9": _d("2020-07-18"), "10": _d("2022-09-10"), "11": _d("2024-08-14"),
    "12": _d("2026-07-11"), "13": _d("2028-08-09"),
})  # fmt: skip
UBUNTU = Product("ubuntu", "Ubuntu", {
    "18.04": _d("2023-05-31"), "20.04": _d("2025-05-31"), "22.04": _d("2027-04-01"),
    "24.04": _d("2029-05-31"), "24.10": _d("2025-07-10"), "25.04": _d("2026-01-17"),
    "25.10": _d("2026-07-01"), "26.04": _d("2031-04-30"),
})  # fmt: skip
ALPINE = Product("alpine-linux", "Alpine Linux", {
    "3.16": _d("2024-05-23"), "3.17": _d("2024-11-22"), "3.18": _d("2025-05-09"),
    "3.19": _d("2025-11-01"), "3.20": _d("2026-04-01"), "3.21": _d("2026-11-01"),
    "3.22": _d("2027-05-01"), "3.23": _d("2027-11-01"), "3.24": _d("2028-06-01"),
})  # fmt: skip
RHEL = Product("rhel", "Red Hat Enterprise Linux", {
    "6": _d("2020-11-30"), "7": _d("2024-06-30"), "8": _d("2029-05-31"),
    "9": _d("2032-05-31"), "10": _d("2035-05-31"),
})  # fmt: skip
CENTOS = Product("centos", "CentOS", {
    # 6 and 7: CentOS Linux; 8: CentOS Linux ended 2021-12-31, CentOS Stream 8 on the
    # date below (both report ID=centos); 9 and 10 exist only as CentOS Stream
    "6": _d("2020-11-30"), "7": _d("2024-06-30"), "8": _d("2024-05-31"),
    "9": _d("2027-05-31"), "10": _d("2030-05-31"),
})  # fmt: skip
ORACLE_LINUX = Product("oracle-linux", "Oracle Linux", {
    "7": _d("2024-12-31"), "8": _d("2029-07-31"), "9": _d("2032-06-30"), "10": None,
})  # fmt: skip

OPERATING_SYSTEMS = {
    "debian": (DEBIAN, 1),
    "ubuntu": (UBUNTU, 2),
    "alpine": (ALPINE, 2),
    "rhel": (RHEL, 1),
    "centos": (CENTOS, 1),
    "ol": (ORACLE_LINUX, 1),
}
"""os-release ``ID`` → product and how many leading parts of ``VERSION_ID`` name the cycle."""
FRAMEWORKS = {
    "Spring Boot": (SPRING_BOOT, 2),
    "Apache Tomcat": (TOMCAT, 2),
    "Quarkus": (QUARKUS, 2),
}
JAVA_VENDORS = {"Red Hat, Inc.": RED_HAT_OPENJDK, "Eclipse Adoptium": TEMURIN}
"""``IMPLEMENTOR`` → whose support policy applies; other vendors' are not in the table."""


@dataclass(frozen=True)
class EndOfLife:
    """A component past its upstream end of life."""

    component: str
    """What is out of support, e.g. ``Python 3.9``."""
    cycle: str
    eol: date
    source: str

    def as_json(self) -> dict[str, str]:
        return {
            "component": self.component,
            "cycle": self.cycle,
            "eol": self.eol.isoformat(),
            "source": self.source,
        }


_NUMBERS = re.compile(r"\d+(?:\.\d+)*")


def _cycle(version: str, parts: int) -> str | None:
    found = _NUMBERS.search(version)
    if found is None:
        return None
    numbers = found.group(0).split(".")
    return ".".join(numbers[:parts]) if len(numbers) >= parts else None


def _judge(product: Product, cycle: str | None, today: date) -> EndOfLife | None:
    if cycle is None or cycle not in product.cycles:
        return None
    ends = product.cycles[cycle]
    if ends is None or ends >= today:  # supported through its last day
        return None
    return EndOfLife(f"{product.label} {cycle}", cycle, ends, SOURCE + product.page)


def java_cycle(version: str) -> str | None:
    """``17.0.13`` → ``17``; the JDK 8 form ``1.8.0_412`` → ``8``."""
    cycle = _cycle(version, 1)
    if cycle == "1":
        cycle = _cycle(version, 2)
        return cycle.split(".")[1] if cycle else None
    return cycle


def kind_cycle(kind: str, version: str) -> tuple[Product, str | None] | None:
    """The product and cycle of a runtime kind's version, as the fingerprints write it
    (``Python 3.9.19``, ``v22.6.0``, ``go1.22.6 …``)."""
    if kind == "Python":
        return PYTHON, _cycle(version, 2)
    if kind == "Node.js":
        return NODEJS, _cycle(version, 1)
    if kind == "Golang":
        return GO, _cycle(version, 2)
    return None


def past_end_of_life(fingerprint: Mapping[str, object], today: date) -> list[EndOfLife]:
    """Every component of a fingerprint (its fields as /v1/containers writes them) past
    its upstream end of life on ``today``."""

    def text(key: str) -> str:
        value = fingerprint.get(key)
        return value if isinstance(value, str) else ""

    found: list[EndOfLife | None] = []
    kind, version = text("kind"), text("kindVersion")
    if kind == "Java" and version and text("kindImplementer") in JAVA_VENDORS:
        vendor = JAVA_VENDORS[text("kindImplementer")]
        found.append(_judge(vendor, java_cycle(version), today))
    elif version and (known := kind_cycle(kind, version)) is not None:
        found.append(_judge(known[0], known[1], today))
    system = OPERATING_SYSTEMS.get(text("os"))
    if system is not None and text("osVersion"):
        found.append(_judge(system[0], _cycle(text("osVersion"), system[1]), today))
    runtimes = fingerprint.get("runtimes")
    for item in runtimes if isinstance(runtimes, list) else ():
        if not isinstance(item, dict):
            continue
        framework = FRAMEWORKS.get(str(item.get("name")))
        release = item.get("version")
        if framework is None or not isinstance(release, str) or "redhat" in release:
            continue
        found.append(_judge(framework[0], _cycle(release, framework[1]), today))
    return [f for f in found if f is not None]
