"""Erlang/OTP (BEAM) processes, and Elixir running on them.

The emulator is ``<root>/erts-<erts>/bin/beam.smp``; the OTP release it belongs to is
written in ``<root>/releases/<major>/OTP_VERSION`` (major from ``start_erl.data``), so no
``erl -eval`` is needed. Kind ``Erlang``, version ``25.2.3``, ERTS version in ``extra``.
Elixir is not a process of its own: its boot flags on the BEAM command line reveal it,
and ``elixir.app`` in the code path gives its version.
"""

from __future__ import annotations

import posixpath
import re

from fingerprints.base import ContainerRoot, Detection, ProcessView
from fingerprints.reading.evidence import absolute, clean_path, exe_name, listdir, read_text

KIND = "Erlang"

_EXE = frozenset({"beam.smp", "beam"})
_ERTS_DIR = re.compile(r"^(.*)/erts-([\d.]+)/bin/[^/]+$")
_OTP = re.compile(r"^\d+(?:\.\d+)*$")
_VSN = re.compile(r'\{\s*vsn\s*,\s*"([^"]+)"\s*\}')
_ELIXIR_MARKERS = ("elixir", "start_cli")


def otp_root(view: ProcessView) -> tuple[str | None, str | None]:
    """(OTP root dir, ERTS version) from ``-root`` on the command line or the exe path."""
    exe = clean_path(view.exe)
    erts = _ERTS_DIR.match(exe)
    root = erts.group(1) if erts else None
    args = view.argv
    for i, arg in enumerate(args[:-1]):
        if arg == "-root":
            root = absolute(view, args[i + 1])
            break
    return root, erts.group(2) if erts else None


def otp_version(root: ContainerRoot, otp: str) -> str | None:
    """The full OTP version of the release the emulator boots (highest if several)."""
    start = (read_text(root, f"{otp}/releases/start_erl.data") or "").split()
    majors = [start[1]] if len(start) == 2 else []
    majors += sorted(
        (d for d in listdir(root, f"{otp}/releases") if _OTP.match(d)),
        key=lambda d: [int(p) for p in d.split(".")],
        reverse=True,
    )
    for major in majors:
        text = read_text(root, f"{otp}/releases/{major}/OTP_VERSION")
        if text and _OTP.match(text.strip().removesuffix("**")):
            return text.strip()
    return majors[0] if majors else None


def _elixir(view: ProcessView) -> tuple[str, str | None] | None:
    argv = view.argv
    if not any(marker in arg for arg in argv for marker in _ELIXIR_MARKERS):
        return None
    for i, arg in enumerate(argv[:-1]):
        path = argv[i + 1]
        if arg == "-pa" and posixpath.basename(path) == "ebin" and "elixir" in path:
            text = read_text(view.root, f"{absolute(view, path)}/elixir.app")
            match = _VSN.search(text or "")
            if match:
                return ("Elixir", match.group(1))
    return ("Elixir", None)


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Erlang`` with the OTP version, plus Elixir when it runs on this BEAM."""
    if exe_name(view) not in _EXE:
        return None
    found = Detection(kind=KIND)
    otp, erts = otp_root(view)
    if erts:
        found.extra["ertsVersion"] = erts
    if otp:
        found.kind_version = otp_version(view.root, otp)
    elixir = _elixir(view)
    if elixir:
        found.runtimes.append(elixir)
    return found
