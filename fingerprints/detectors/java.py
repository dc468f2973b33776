"""Java (JVM) processes: runtime version and vendor without running ``java -version``.

The JVM is a shared library, so any launcher (``java``, jsvc, an embedded JVM) maps
``libjvm.so``; its directory gives the Java home, whose ``release`` file states the
version and vendor exactly as insights-runtime-extractor reports them (kind ``Java``,
``17.0.13``, ``Red Hat, Inc.``). jlink images keep only ``JAVA_VERSION`` in ``release``,
so the VM banner and vendor strings compiled into libjvm are the fallback.
Frameworks and servers (Spring Boot, Quarkus, Tomcat, WildFly, …) come from javaapps.
"""

from __future__ import annotations

import posixpath
import re

from fingerprints.base import ContainerRoot, Detection, FingerprintError, ProcessView
from fingerprints.detectors.javaapps import detect_apps
from fingerprints.reading.binscan import scan_strings
from fingerprints.reading.evidence import (
    clean_path,
    exe_name,
    library_reader,
    mapped,
    parse_properties,
    read_text,
)
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "Java"

_LIBJVM = re.compile(r"/libjvm\.so$")
_HOME = re.compile(
    r"^(.*?)(/jre)?/lib(?:/[^/]+)?/(?:server|client|minimal|zero|default)/libjvm\.so$"
)
_BANNER = re.compile(rb" VM \(([^)\x00]{1,80})\) for [a-z0-9_-]{1,20} JRE \(([^)\x00]{1,80})\)")
_KNOWN_VENDORS = (
    "Eclipse Adoptium", "Debian", "Ubuntu", "Red Hat, Inc.", "Amazon.com Inc.",
    "Azul Systems, Inc.", "BellSoft", "Microsoft", "Oracle Corporation", "SAP SE",
    "IBM Corporation", "Eclipse OpenJ9", "GraalVM Community", "JetBrains s.r.o.",
    "Alibaba", "Tencent", "Homebrew",
)  # fmt: skip
_VENDOR = re.compile(b"(" + b"|".join(re.escape(v.encode()) for v in _KNOWN_VENDORS) + b")\\x00")


def java_home(view: ProcessView) -> tuple[str | None, str | None]:
    """(Java home, mapped libjvm path) of a JVM process; (None, None) if it is not one."""
    hit = mapped(view, _LIBJVM)
    if hit is not None:
        libjvm = hit[0]
        home = _HOME.match(libjvm)
        if home:
            return home.group(1), libjvm
        return posixpath.dirname(posixpath.dirname(posixpath.dirname(libjvm))), libjvm
    if exe_name(view) == "java" and not view.maps:
        exe = clean_path(view.exe)
        return posixpath.dirname(posixpath.dirname(exe)), None
    return None, None


def version_from_runtime_version(text: str) -> str:
    """The JAVA_VERSION form: ``17.0.15+6-Debian…`` → ``17.0.15``, ``1.8.0_411-b09`` →
    ``1.8.0_411``."""
    return re.split(r"[+-]", text, maxsplit=1)[0]


def _release(root: ContainerRoot, home: str) -> dict[str, str]:
    for candidate in (f"{home}/release", f"{home}/jre/release"):
        text = read_text(root, candidate)
        if text is not None:
            return parse_properties(text)
    return {}


def _libjvm_strings(view: ProcessView, libjvm: str) -> tuple[str | None, str | None]:
    """(runtime version from the VM banner, vendor string) read out of libjvm.so."""
    read = library_reader(view, libjvm)
    banner = scan_strings(read, _BANNER)
    runtime_version = banner[0].group(2).decode("ascii", "replace") if banner else None
    vendor = scan_strings(read, _VENDOR, preceded_by=b"\x00")
    return runtime_version, vendor[0].group(1).decode() if vendor else None


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Java`` with version and implementer, plus the frameworks found."""
    home, libjvm = java_home(view)
    if home is None:
        return None
    found = Detection(kind=KIND, extra={"javaHome": home})
    release = _release(view.root, home)
    found.kind_version = release.get("JAVA_VERSION") or None
    found.kind_implementer = release.get("IMPLEMENTOR") or None
    runtime_version = release.get("JAVA_RUNTIME_VERSION")
    if libjvm is not None and (found.kind_version is None or found.kind_implementer is None):
        try:
            banner_version, vendor = _libjvm_strings(view, libjvm)
        except BudgetExceeded:
            raise
        except FingerprintError as exc:
            found.extra["javaError"] = f"libjvm: {exc}"
        else:
            runtime_version = runtime_version or banner_version
            if found.kind_version is None and banner_version:
                found.kind_version = version_from_runtime_version(banner_version)
            found.kind_implementer = found.kind_implementer or vendor
    if runtime_version:
        found.extra["javaRuntimeVersion"] = runtime_version
    found.runtimes = detect_apps(view)
    return found
