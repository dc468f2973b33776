"""Perl processes: version from the ``v5.36.0`` constant in the interpreter.

Kind ``Perl``, version ``5.36.0`` (``$^V`` without the ``v``). The interpreter is the
executable (Debian has no shared libperl mapped for /usr/bin/perl) or ``libperl.so``.
"""

from __future__ import annotations

import re

from fingerprints.base import Detection, FingerprintError, ProcessView
from fingerprints.reading.binscan import first_string
from fingerprints.reading.evidence import exe_name, library_reader, mapped
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "Perl"

_EXE = re.compile(r"^perl(5[\d.]*)?$")
_LIBPERL = re.compile(r"/libperl\.so[.\d]*$")
_VERSION = re.compile(rb"v(5\.\d{1,3}\.\d{1,3})\x00")


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Perl`` with its version."""
    lib = mapped(view, _LIBPERL)
    if not _EXE.match(exe_name(view)) and lib is None:
        return None
    found = Detection(kind=KIND)
    read = library_reader(view, lib[0]) if lib else view.read_exe
    try:
        hit = first_string(read, _VERSION, preceded_by=b"\x00")
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError) as exc:
        found.extra["perlError"] = f"perl binary: {exc}"
        hit = None
    if hit is not None:
        found.kind_version = hit.group(1).decode()
    return found
