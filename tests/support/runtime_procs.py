"""Helpers for the language-detector tests: real runtime processes and their ProcessView.

Detectors are tested on processes that really run (the way the agent meets them), seen
through ``/proc/<pid>`` with the confined root. The view comes from the engine's own
/proc reader (procsel.read_view) for exactly the pid under test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fingerprints.base import ProcessView
from fingerprints.reading import processes as procsel
from fingerprints.reading.rootfs import Budget, ConfinedRoot

START_TIMEOUT = 60.0
TOMCAT_SERVER_XML = (
    '<Server port="-1" shutdown="SHUTDOWN"><Service name="Catalina">'
    '<Connector port="0" address="127.0.0.1" protocol="HTTP/1.1"/>'
    '<Engine name="Catalina" defaultHost="localhost">'
    '<Host name="localhost" appBase="webapps" autoDeploy="false"/>'
    "</Engine></Service></Server>"
)
"""No shutdown port, an ephemeral loopback connector: a Tomcat that many can run at once."""


def catalina_base(base: Path) -> Path:
    """A minimal CATALINA_BASE for Debian's Tomcat (its conf, logs, temp, webapps)."""
    for sub in ("conf", "logs", "temp", "webapps"):
        (base / sub).mkdir(parents=True)
    (base / "conf/server.xml").write_text(TOMCAT_SERVER_XML)
    return base


def maps_paths(pid: int) -> list[str]:
    """Distinct file paths mapped by ``pid``, in address order."""
    seen: dict[str, None] = {}
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                seen.setdefault(fields[5], None)
    return list(seen)


def process_view(pid: int, budget: Budget | None = None) -> ProcessView:
    """The ProcessView of a live host process, read by the engine's own /proc reader with
    the host root confined like a container's."""
    budget = budget or Budget()
    cand = next(c for c in procsel.candidates("/proc", [pid]) if c.pid == pid)
    root = ConfinedRoot(f"/proc/{pid}/root", budget)
    view, _ = procsel.read_view("/proc", cand, root, budget)
    return view


@contextmanager
def running(
    argv: list[str],
    ready: Callable[[int], bool],
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv``, wait (bounded) until ``ready(pid)``, and always kill it after.

    stdin is a pipe left open, so programs that read it (rg, pkl server) stay alive.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready(proc.pid):
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode} before ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} not ready after {START_TIMEOUT}s")
            time.sleep(0.02)
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def maps_library(pattern: str) -> Callable[[int], bool]:
    """Readiness: the process has mapped a file whose path contains ``pattern``."""

    def ready(pid: int) -> bool:
        try:
            return any(pattern in p for p in maps_paths(pid))
        except OSError:
            return False

    return ready


def sleeping_as(argv: list[str]) -> Callable[[int], bool]:
    """Readiness: the child runs ``argv`` (exec done) and sleeps (start-up done)."""
    wanted = b"\0".join(a.encode() for a in argv) + b"\0"

    def ready(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() != wanted:
                    return False
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] == "S"
        except OSError:
            return False

    return ready
