""".NET (CoreCLR) and Mono processes.

CoreCLR is a shared library: ``libcoreclr.so`` in the maps identifies .NET without trusting
environment variables (Kubernetes service-link variables made env-based detection
misfire elsewhere). Framework-dependent apps load it from
``shared/Microsoft.NETCore.App/<version>/``, so the directory names the runtime version;
ASP.NET Core shows up as mapped files under ``shared/Microsoft.AspNetCore.App/<version>/``.
Self-contained apps get the version from ``System.Private.CoreLib.dll``'s informational
version. Kind ``.NET`` (version ``8.0.4``); Mono is kind ``Mono``.
"""

from __future__ import annotations

import re

from fingerprints.base import Detection, FingerprintError, ProcessView
from fingerprints.reading.binscan import iter_matches
from fingerprints.reading.evidence import exe_name, library_reader, mapped
from fingerprints.reading.rootfs import BudgetExceeded

KIND = ".NET"
MONO = "Mono"

_CORECLR = re.compile(r"/libcoreclr\.so$")
_SHARED = re.compile(r"/shared/Microsoft\.NETCore\.App/(\d+\.\d+\.\d+[^/]*)/libcoreclr\.so$")
_ASPNET = re.compile(r"/shared/Microsoft\.AspNetCore\.App/(\d+\.\d+\.\d+[^/]*)/")
_CORELIB = re.compile(r"/System\.Private\.CoreLib\.dll$")
_INFO_VERSION = re.compile(rb"(\d{1,2}\.\d{1,3}\.\d{1,4}(?:-[\w.]{1,40})?)\+[0-9a-f]{40}")
_MONO_EXE = frozenset({"mono", "mono-sgen"})
_LIBMONO = re.compile(r"/libmono(?:sgen)?-2\.0\.so[.\d]*$")
_CORELIB_SCAN = 16 << 20


def _self_contained_version(view: ProcessView) -> str | None:
    corelib = mapped(view, _CORELIB)
    if corelib is None:
        return None
    for match in iter_matches(library_reader(view, corelib[0]), _INFO_VERSION, 0, _CORELIB_SCAN):
        return release_version(match.group(1).decode())
    return None


def release_version(informational: str) -> str:
    """``3.1.23-servicing.22116.1`` → ``3.1.23``: servicing/rtm builds are releases, while a
    ``-preview.7…`` or ``-rc.1…`` label is kept because it is part of the version."""
    return re.sub(r"-(?:servicing|rtm)\..*$", "", informational)


def detect(view: ProcessView) -> Detection | None:
    """Kind ``.NET`` with the Microsoft.NETCore.App version, or kind ``Mono``."""
    coreclr = mapped(view, _CORECLR)
    if coreclr is None:
        if exe_name(view) in _MONO_EXE or mapped(view, _LIBMONO) is not None:
            return Detection(kind=MONO)
        return None
    found = Detection(kind=KIND)
    shared = _SHARED.search(coreclr[0])
    if shared:
        found.kind_version = shared.group(1)
    else:
        try:
            found.kind_version = _self_contained_version(view)
        except BudgetExceeded:
            raise
        except (FingerprintError, OSError) as exc:
            found.extra["dotnetError"] = f"System.Private.CoreLib.dll: {exc}"
    aspnet = mapped(view, _ASPNET)
    if aspnet is not None:
        found.runtimes.append(("ASP.NET Core", aspnet[1].group(1)))
    return found
