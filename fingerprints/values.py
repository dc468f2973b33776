"""Every value a fingerprint publishes, checked for what its field is.

A fingerprint's values are read out of files a container controls, so a field must not
become a way to echo a file: ``/etc/alpine-release`` pointing at something else would
otherwise publish that something's first line as ``osVersion``. Each field has a shape
(a version is a version: bounded length, a small character set); a value of another
shape is left out and the fingerprint's ``error`` says which field was refused, never
what the value was. Error texts themselves are bounded and stripped of control
characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from fingerprints.result import Component, Result

TOKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
"""An identifier: os-release ``ID``, a patch level, a VCS revision."""
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}")
"""A version number alone: ``8.10``, ``3.20.2``, ``1.8.0_411``, ``go1.22.6``."""
VERSION_TEXT = re.compile(r"[0-9A-Za-z(][0-9A-Za-z ._+~:,()/-]{0,127}")
"""A version as a runtime prints it: ``Python 3.11.2``, ``8.0 Update 6.1``,
``go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime``, ``(devel)``."""
NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z ._+~:,()/&'-]{0,127}")
"""A vendor or product name: ``Red Hat, Inc.``, ``Red Hat JBoss Enterprise Application
Platform``, ``GraalVM CE 25+37.1``."""
MODULE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._~+/@-]{0,255}")
"""A Go module or package path."""
PATH = re.compile(r"/[^\x00-\x1f\x7f]{0,255}")
"""An absolute container path without control characters."""
TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
"""Anything else a detector adds: printable, bounded."""

FIELDS: dict[str, re.Pattern[str]] = {
    "os": re.compile(r"[0-9a-z][0-9a-z._-]{0,63}"),
    "osVersion": VERSION,
    "kind": re.compile(r"[.0-9A-Za-z][0-9A-Za-z .+#-]{0,31}"),
    "kindVersion": VERSION_TEXT,
    "kindImplementer": NAME,
    "osVariant": TOKEN,
    "javaHome": PATH,
    "javaRuntimeVersion": VERSION_TEXT,
    "javaVersion": VERSION_TEXT,
    "graalvmVM": NAME,
    "graalvmImplementer": NAME,
    "goVersion": VERSION,
    "goVendor": NAME,
    "goExperiment": re.compile(r"[0-9A-Za-z][0-9A-Za-z,._-]{0,127}"),
    "goVersionConfidence": TOKEN,
    "goMainPath": MODULE,
    "goMainModule": MODULE,
    "goMainModuleVersion": VERSION_TEXT,
    "vcsRevision": TOKEN,
    "vcsModified": TOKEN,
    "pypyVersion": VERSION,
    "rubyPatchlevel": TOKEN,
    "ertsVersion": VERSION,
}
RUNTIME_NAME = NAME
RUNTIME_VERSION = VERSION_TEXT
MAX_ERROR = 512
"""Characters kept of one error message (a fingerprint may carry several)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_error_field(key: str) -> bool:
    """``error`` and the per-detector ``<kind>Error`` fields: kept, but sanitised."""
    return key == "error" or key.endswith("Error")


def clean_error(text: str) -> str:
    """An error message with control characters escaped, cut at MAX_ERROR characters."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def valid(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def checked(result: Result) -> Result:
    """``result`` with every value that does not have its field's shape left out and
    named in ``error``; empty values are left out silently (they mean "not found")."""
    refused: list[str] = []

    def keep(field: str, value: str | None, pattern: re.Pattern[str]) -> str | None:
        if not value:
            return None
        if valid(pattern, value):
            return value
        refused.append(field)
        return None

    top = {key: keep(key, getattr(result, key), FIELDS[key]) for key in _TOP}
    runtimes = []
    for c in result.runtimes:
        name = keep("runtimes.name", c.name, RUNTIME_NAME)
        if name is not None:
            runtimes.append(Component(name, keep("runtimes.version", c.version, RUNTIME_VERSION)))
    extra = _checked_extra(result.extra, refused)
    errors = [clean_error(result.error)] if result.error else []
    if refused:
        names = ", ".join(dict.fromkeys(refused))
        errors.append(f"values left out, not of their field's form: {names}")
    return replace(
        result,
        **top,
        runtimes=tuple(runtimes),
        extra=MappingProxyType(extra),
        error="; ".join(errors) or None,
    )


_TOP = ("os", "osVersion", "kind", "kindVersion", "kindImplementer")


def _checked_extra(extra: Mapping[str, object], refused: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in extra.items():
        if not valid(TOKEN, key):
            refused.append("extra field name")
        elif isinstance(value, bool | int):
            out[key] = value
        elif not isinstance(value, str):
            refused.append(key)
        elif not value:
            continue
        elif is_error_field(key):
            out[key] = clean_error(value)
        elif valid(FIELDS.get(key, TEXT), value):
            out[key] = value
        else:
            refused.append(key)
    return out
