"""Fingerprinting cost, cold (nothing cached) and warm (a long-lived Fingerprinter).

20 "containers", each one running process of Debian's Go binary ``ctr`` (kept alive by
a connect timeout to a socket that does not exist) behind a ``sh`` wrapper. The
baseline is the least a warm pass can do: read each chosen process's
``/proc/<pid>/stat`` once. Reported as ratios of that baseline: a cold pass (full
process choice, OS, every registered detector) and a warm pass (cache hits only).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.rounds import rounds
from fingerprints.engine import Fingerprinter

CONTAINERS = 20
ROUNDS = 7


def start() -> list[subprocess.Popen[bytes]]:
    procs = []
    for _ in range(CONTAINERS):
        sock = f"/nonexistent/ri-bench-{uuid.uuid4().hex}.sock"
        procs.append(
            subprocess.Popen(
                ["sh", "-c", f"ctr --address {sock} --connect-timeout 300s version; true"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 30
    for p in procs:
        while not Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
            if time.monotonic() > deadline:
                raise RuntimeError("ctr did not start")
            time.sleep(0.01)
    return procs


def timed(fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(rounds(ROUNDS)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    procs = start()
    try:
        pids = [p.pid for p in procs]
        chosen = [int(Path(f"/proc/{p}/task/{p}/children").read_text().split()[0]) for p in pids]

        def baseline() -> None:
            for pid in chosen:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    f.read()

        def cold() -> None:
            engine = Fingerprinter()
            for i, pid in enumerate(pids):
                engine.fingerprint(f"c{i}", [pid])

        warm_engine = Fingerprinter()
        kinds = {warm_engine.fingerprint(f"c{i}", [p]).kind for i, p in enumerate(pids)}

        def warm() -> None:
            for i, pid in enumerate(pids):
                warm_engine.fingerprint(f"c{i}", [pid])

        base = timed(baseline)
        t_cold = timed(cold)
        t_warm = timed(warm)
        computed_before = warm_engine.computed
        warm()
        print(f"containers: {CONTAINERS}, kinds found: {sorted(k or '-' for k in kinds)}")
        print(f"cold pass / baseline: {t_cold / base:8.1f}x")
        print(f"warm pass / baseline: {t_warm / base:8.1f}x")
        print(f"cold / warm:          {t_cold / t_warm:8.1f}x")
        print(f"warm pass recomputed: {warm_engine.computed - computed_before} fingerprints")
        return 0 if kinds == {"Golang"} and warm_engine.computed == computed_before else 1
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)  # the session holds sh and its ctr
            p.wait()


if __name__ == "__main__":
    raise SystemExit(main())
