"""The fingerprint worker: the engine in a process of its own, which its parent may kill.

A container controls every byte fingerprinting reads, and some reads can stall however
careful the parser (a FUSE file whose server never answers, an NFS mount gone away).
Run here, a stall costs only this process: the extractor (``extractor/fingerprinting.py``)
waits for an answer up to the container's budget, then kills the worker and starts a
new one; its own threads, socket, exit watcher and signal handling never wait on a
container's files.

Started as ``python -I -m fingerprints.worker --proc-root … --max-seconds …``: it loads
only this package and ``hostfs`` (the first line it writes lists the top-level modules
loaded, so that can be checked), inherits the extractor's privileges and no more
(``PR_SET_NO_NEW_PRIVS``), none of its descriptors, and dies with it
(``PR_SET_PDEATHSIG``). Protocol: one JSON object per line each way; a request
``{"job": n, "pids": [...], "alone": bool}``, an answer ``{"job": n, "fields": {...},
"chosen": [pid, start_ticks] | null, "overBudget": bool}`` where ``fields`` is
``Result.fields()``: plain JSON, converted by the extractor once.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
from collections.abc import Sequence
from typing import BinaryIO

from fingerprints.engine import Fingerprinter

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
MAX_REQUEST = 1 << 20
"""Longest request line read (a container with 100,000 processes fits)."""
ADDRESS_SPACE = 4 << 30
"""Address-space limit: a parser that tried to hold a container's file in memory several
times over fails with MemoryError (one container's error) instead of growing the node
agent. Generous: reads are capped far below (``fingerprints/reading/rootfs.py``)."""


def _harden(parent: int) -> None:
    """Die with the parent, gain no privilege on exec, dump no core."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > ADDRESS_SPACE:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def loaded_packages() -> list[str]:
    """Top-level names of every module loaded (what the worker's first line reports)."""
    return sorted({name.split(".", 1)[0] for name in sys.modules})


def _answer(out: BinaryIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    out.flush()


def serve(engine: Fingerprinter, requests: BinaryIO, out: BinaryIO) -> None:
    """Answer requests until stdin closes."""
    while line := requests.readline(MAX_REQUEST):
        request = json.loads(line)
        pids = [int(p) for p in request["pids"]]
        done = engine.compute(pids, alone=bool(request.get("alone")))
        chosen = [done.chosen.pid, done.chosen.start_ticks] if done.chosen else None
        _answer(
            out,
            {
                "job": request["job"],
                "fields": done.result.fields(),
                "chosen": chosen,
                "overBudget": done.over_budget,
            },
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fingerprints.worker")
    parser.add_argument("--proc-root", default="/proc")
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--max-bytes", type=int, default=64 << 20)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    _harden(args.parent)
    # the protocol owns the original stdout; anything printed goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    engine = Fingerprinter(args.proc_root, max_seconds=args.max_seconds, max_bytes=args.max_bytes)
    _answer(out, {"ready": os.getpid(), "modules": loaded_packages()})
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(engine, sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
