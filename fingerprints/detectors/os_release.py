"""The container image's operating system, from release files inside its root.

os-release(5) first (``/etc`` wins over ``/usr/lib``), then the older distribution
files, then the dpkg ``status.d`` of distroless images; a scratch image has none and
gets no OS rather than a guess. Values follow insights-runtime-extractor
(``ID``/``VERSION_ID``: ``rhel``/``8.10``, ``debian``/``12``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fingerprints.base import ContainerRoot, RootError
from fingerprints.reading.rootfs import BudgetExceeded

MAX_RELEASE_FILE = 64 << 10
MAX_STATUS_FILES = 4096

_REDHAT_RE = re.compile(r"^(.*?) release (\d[\d.]*)")
_REDHAT_IDS = (
    ("Red Hat Enterprise Linux", "rhel"),
    ("CentOS", "centos"),
    ("Rocky Linux", "rocky"),
    ("AlmaLinux", "almalinux"),
    ("Oracle Linux", "ol"),
    ("Fedora", "fedora"),
    ("Amazon Linux", "amzn"),
)
_UNQUOTED_ESCAPES = re.compile(r"\\([\\$\"`])")


@dataclass
class OsInfo:
    """OS identity (``id``) and version; ``extra`` holds flags such as the variant."""

    id: str
    version: str | None
    extra: dict[str, str] = field(default_factory=dict)


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as os-release(5) defines them: quotes, escapes, no expansion."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = _UNQUOTED_ESCAPES.sub(r"\1", value)
        out[key.strip()] = value
    return out


def _read(root: ContainerRoot, path: str) -> str | None:
    """The file's text, or None when it is missing or not a readable regular file."""
    try:
        return root.read_text(path, MAX_RELEASE_FILE)
    except BudgetExceeded:
        raise
    except RootError:
        return None


def _from_os_release(text: str) -> OsInfo:
    fields = parse_os_release(text)
    info = OsInfo(
        id=fields.get("ID") or "linux",
        version=fields.get("VERSION_ID") or fields.get("BUILD_ID") or None,
    )
    if "distroless" in (fields.get("PRETTY_NAME", "") + fields.get("HOME_URL", "")).lower():
        info.extra["osVariant"] = "distroless"
    return info


def _from_redhat(text: str) -> OsInfo | None:
    m = _REDHAT_RE.match(text.strip())
    if m is None:
        return None
    name = m.group(1)
    for prefix, os_id in _REDHAT_IDS:
        if name.startswith(prefix):
            return OsInfo(os_id, m.group(2))
    return OsInfo(name.split()[0].lower(), m.group(2))


def _debian_major(version: str) -> str | None:
    """``12`` from ``12.11`` or ``12.4+deb12u5``; None for ``bookworm/sid``."""
    m = re.match(r"(\d+)", version.strip())
    return m.group(1) if m else None


def _from_dpkg_status_d(root: ContainerRoot) -> OsInfo | None:
    """Distroless: one dpkg stanza per package, ``base-files`` carries the release."""
    try:
        names = root.listdir("/var/lib/dpkg/status.d", limit=MAX_STATUS_FILES)
    except BudgetExceeded:
        raise
    except RootError:
        return None
    for name in names:
        if not name.startswith("base") or name.endswith(".md5sums"):
            continue
        stanza = _read(root, f"/var/lib/dpkg/status.d/{name}") or ""
        if re.search(r"^Package:\s*base-files\s*$", stanza, re.M):
            version = re.search(r"^Version:\s*(\S+)", stanza, re.M)
            major = _debian_major(version.group(1)) if version else None
            return OsInfo("debian", major, {"osVariant": "distroless"})
    return None


def detect_os(root: ContainerRoot) -> OsInfo | None:
    """The first release file that answers, in os-release(5) and distribution order
    (Ubuntu's lsb-release before debian_version, which Ubuntu fills with a codename)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = _read(root, path)
        if text is not None:
            return _from_os_release(text)
    text = _read(root, "/etc/alpine-release")
    if text and text.strip():
        return OsInfo("alpine", text.splitlines()[0].strip())
    for path in ("/etc/redhat-release", "/etc/centos-release", "/etc/fedora-release"):
        text = _read(root, path)
        info = _from_redhat(text) if text else None
        if info is not None:
            return info
    text = _read(root, "/etc/lsb-release")
    fields = parse_os_release(text) if text else {}
    if fields.get("DISTRIB_ID"):
        return OsInfo(fields["DISTRIB_ID"].lower(), fields.get("DISTRIB_RELEASE") or None)
    text = _read(root, "/etc/debian_version")
    if text is not None:
        return OsInfo("debian", _debian_major(text))
    for path in ("/etc/system-release", "/usr/lib/system-release"):
        text = _read(root, path)
        info = _from_redhat(text) if text else None
        if info is not None:
            return info
    return _from_dpkg_status_d(root)
