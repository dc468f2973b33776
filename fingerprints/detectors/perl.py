"""Perl processes: version from the ``v5.36.0`` constant in the interpreter.

Kind ``Perl``, version ``5.36.0`` (``$^V`` without the ``v``). The interpreter is the
executable (Debian has no shared libperl mapped for /usr/bin/perl) or ``libperl.so``.
"""

from __future__ import annotations

import re

from fingerprints.base import Detection, ProcessView
from fingerprints.reading.evidence import interpreter

KIND = "Perl"

_EXE = re.compile(r"^perl(5[\d.]*)?$")
_LIBPERL = re.compile(r"/libperl\.so[.\d]*$")
_VERSION = re.compile(rb"v(5\.\d{1,3}\.\d{1,3})\x00")


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Perl`` with its version."""
    seen = interpreter(view, KIND, _EXE, _LIBPERL, _VERSION, preceded_by=b"\x00")
    if seen is None:
        return None
    found, hit = seen
    if hit is not None:
        found.kind_version = hit.group(1).decode()
    return found
