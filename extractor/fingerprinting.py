"""Fingerprints for the snapshot, computed beside the passes by a worker process.

A container controls every file fingerprinting reads, so nothing the extractor must keep
doing (accounting, the unix socket, the exit watcher, SIGTERM) ever waits on one: the
engine runs in a child process (``fingerprints/worker.py``) that a thread here feeds one
container at a time and kills when an answer does not come within the container's
budget (then starts a new one). A pass never waits either: asked for a container, this
returns at once what it has — the cached fingerprint, or ``Fingerprint(pending=True)``
for a container seen for the first time, whose job is queued — so a new container's
counters are in the first snapshot and its fingerprint in a later one.

Cost: a warm pass sends nothing to the worker. Whether a cached fingerprint still holds
(its process runs on) is checked here, in the pass, against the pass's own reading of the
container's processes (discovery's stat: no read at all); only when the process is not
among them is it looked up (``hostfs/liveness.py``: one ``/proc/<pid>/stat`` read).
Only containers that are new or changed become jobs. Cold
work gets a per-pass time budget (``pass_seconds`` of worker time after each pass
begins; what does not fit waits for the next pass), and a container whose fingerprint
ran out of its own budget, or killed the worker, keeps that error (naming the budget)
and is tried again only after a backoff that doubles up to an hour, never every pass.
A fingerprint that found no kind is looked at again after RECHECK_SECONDS, then after
twice that and so on, MAX_RECHECKS times in all (10 s to 150 s after the first look),
even when the container's processes stay the same: the workload may be a process caught
before it ran its runtime (a shell that then ``exec``s Java keeps its PID; a JVM or .NET
host maps the library that names it only after it starts). That happens in a process's
first seconds; after the last look a kindless answer is the container's own (a C binary,
a shell script) and costs nothing more until its processes change.
Answers cross the process boundary as plain JSON (``Result.fields()``) and become the
contract's ``Fingerprint`` once, when they arrive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from extractor.contract import Fingerprint, Snapshot
from hostfs import Chosen, ProcStat, reusable

log = logging.getLogger(__name__)

PENDING = Fingerprint(pending=True)
"""What a container's fingerprint is until its first answer arrives."""
MAX_SECONDS = 5.0
PASS_SECONDS = 2.0
RETRY_SECONDS = 60.0
RECHECK_SECONDS = 10.0
"""First look again at a fingerprint without a kind while its processes stay the same."""
MAX_RECHECKS = 4
"""Looks again at a kindless fingerprint of the same processes, each after twice the wait
of the one before."""
MAX_RETRY_SECONDS = 3600.0
GRACE_SECONDS = 1.0
"""Beyond a container's budget before the worker is abandoned: the engine stops itself
at its budget, so only a read that blocks (FUSE, a dead NFS server) outlasts this."""
START_SECONDS = 30.0
"""How long a new worker may take to load the detectors and say it is ready."""
MAX_ANSWER = 4 << 20
MAX_KEPT = 8192
"""Bound on remembered containers, whatever the pass pattern."""
REAP_SECONDS = 0.2
MAX_STUCK = 4
"""Abandoned workers still alive (blocked in the kernel) beyond which no new job starts
until one is gone: each holds its memory, and counters matter more than fingerprints."""


class WorkerFailed(Exception):
    """The worker could not be started, died, or said something that is no answer."""


@dataclass
class _Known:
    """The last fingerprint of a container and what it was read from."""

    fingerprint: Fingerprint
    chosen: Chosen | None
    pids: list[int]
    retry_at: float | None = None
    """Set after a failure: no new job before then, whatever the container does."""
    failures: int = 0
    recheck_at: float | None = None
    """Set when no kind was found: a new job then, even if the processes are the same."""
    kindless: int = 0
    """Answers in a row without a kind (the recheck delay doubles with each)."""


@dataclass
class Stats:
    answers: int = 0
    abandoned: int = 0
    worker_starts: int = 0
    jobs: int = 0
    busy_seconds: float = 0.0
    last_ready: dict[str, object] = field(default_factory=dict)


class _Worker:
    """One worker process and the reading end of its answers."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # its own: a worker stuck in the kernel holds no pipe of ours
            close_fds=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.stdin = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        self.err_fd = self.proc.stderr.fileno()
        os.set_blocking(self.fd, False)
        os.set_blocking(self.err_fd, False)
        self.buffer = b""

    def log_stderr(self) -> None:
        """What the worker wrote on stderr (a traceback, a warning), into our log."""
        try:
            text = os.read(self.err_fd, 1 << 16)
        except (BlockingIOError, OSError, ValueError):
            return
        for line in text.decode("utf-8", "replace").splitlines()[-20:]:
            log.warning("fingerprint worker: %s", line[:500])

    def send(self, message: dict[str, object]) -> None:
        try:
            self.stdin.write(json.dumps(message).encode() + b"\n")
            self.stdin.flush()
        except OSError as e:
            raise WorkerFailed(f"fingerprint worker gone: {e.strerror or e}") from None

    def receive(self, deadline: float, wake: int) -> dict[str, object] | None:
        """The next line, None when the deadline passed first; WorkerFailed as soon as
        ``wake`` is readable (closing: a worker stuck in the kernel never hangs up)."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # poll, not select: the extractor keeps thousands of descriptors open
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            poller.register(wake, select.POLLIN)
            ready = {fd for fd, _ in poller.poll(max(left * 1000, 1))}
            if wake in ready:
                raise WorkerFailed("fingerprints closed")
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as e:
                raise WorkerFailed(f"fingerprint worker unreadable: {e.strerror}") from None
            if not chunk:
                raise WorkerFailed(f"fingerprint worker exited ({self.status()})")
            self.buffer += chunk
            if len(self.buffer) > MAX_ANSWER:
                raise WorkerFailed("fingerprint worker answer too long")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise WorkerFailed("fingerprint worker answer is not JSON") from None
        if not isinstance(message, dict):
            raise WorkerFailed("fingerprint worker answer is not an object")
        return message

    def status(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"signal {-code}" if code < 0 else f"status {code}"

    def kill(self, wait: float = REAP_SECONDS) -> bool:
        """Kill it; True once it is reaped. A worker blocked in the kernel on a read whose
        server took the request and never answers (FUSE) cannot die before that answer
        (the kernel waits for it uninterruptibly): it is left to exit on its own."""
        self.proc.kill()
        self.log_stderr()
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return False
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return True


def worker_argv(proc_root: str, max_seconds: float, max_bytes: int) -> list[str]:
    """The worker's command line: this interpreter, isolated (no PYTHON* variables, no
    user site, no working directory on the path)."""
    return [
        sys.executable,
        "-I",
        "-m",
        "fingerprints.worker",
        "--proc-root",
        proc_root,
        "--max-seconds",
        repr(max_seconds),
        "--max-bytes",
        str(max_bytes),
        "--parent",
        str(os.getpid()),
    ]


class Fingerprints:
    """``fingerprint(container_id, pids)`` for the pass: never blocks, never raises.

    Call ``begin_pass()`` before each pass (it renews the pass's worker-time budget and
    forgets containers the previous pass did not see), ``wait()`` where a command wants
    the answers before it prints, ``close()`` at the end.
    """

    def __init__(
        self,
        proc_root: str,
        *,
        max_seconds: float = MAX_SECONDS,
        pass_seconds: float | None = PASS_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        recheck_seconds: float = RECHECK_SECONDS,
        max_bytes: int = 64 << 20,
        alone: bool = False,
        argv: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc_root = proc_root
        self.max_seconds = max_seconds
        self.pass_seconds = pass_seconds
        self.retry_seconds = retry_seconds
        self.recheck_seconds = recheck_seconds
        self.alone = alone
        self.argv = argv or worker_argv(proc_root, max_seconds, max_bytes)
        self.clock = clock
        self.stats = Stats()
        self._known: dict[str, _Known] = {}
        self._queue: OrderedDict[str, list[int]] = OrderedDict()
        self._running: str | None = None
        self._seen: set[str] = set()
        self._spent = 0.0
        self._next_start = 0.0
        self._start_failures = 0
        self._worker: _Worker | None = None
        self._stuck: dict[str, _Worker] = {}
        """Abandoned workers not dead yet, by the container they were stuck on."""
        self._closed = False
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fingerprints", daemon=True)
        self._thread.start()

    # --- the pass side -----------------------------------------------------------------

    def begin_pass(self) -> None:
        with self._cond:
            for cid in set(self._known) - self._seen:
                del self._known[cid]
            for cid in set(self._queue) - self._seen:
                del self._queue[cid]
            if len(self._known) > MAX_KEPT:
                self._known.clear()
            self._seen = set()
            self._spent = 0.0
            self._cond.notify_all()

    def __call__(
        self, container_id: str, pids: list[int], stats: Sequence[ProcStat] | None = None
    ) -> Fingerprint:
        """``stats``: the pass's own reading of those processes (discovery's), which
        answers whether the fingerprinted process runs on without another read."""
        with self._cond:
            self._seen.add(container_id)
            known = self._known.get(container_id)
        if known is not None and self._holds(container_id, known, pids, stats):
            return known.fingerprint
        with self._cond:
            if container_id != self._running and not self._closed:
                self._queue[container_id] = list(pids)
                self._cond.notify_all()
        return known.fingerprint if known is not None else PENDING

    def _holds(
        self, cid: str, known: _Known, pids: list[int], stats: Sequence[ProcStat] | None
    ) -> bool:
        if cid in self._stuck:  # not again while a worker is still stuck on it
            return True
        if known.retry_at is not None:
            return self.clock() < known.retry_at
        chosen = known.chosen
        if chosen is None:  # nothing could be chosen: look again once pids change
            return sorted(pids) == known.pids
        found_kind = known.fingerprint.kind is not None
        if known.recheck_at is not None and self.clock() >= known.recheck_at:
            return False
        for st in stats or ():
            if st.pid == chosen.pid:
                if st.start_ticks != chosen.start_ticks:
                    return False
                return found_kind or sorted(pids) == known.pids
        return reusable(self.proc_root, chosen, found_kind, known.pids, pids)

    def current(self, container_id: str) -> Fingerprint | None:
        """What is known of a container now (None: never asked about)."""
        with self._cond:
            known = self._known.get(container_id)
        return known.fingerprint if known is not None else None

    def wait(self, timeout: float) -> bool:
        """Until no job is queued or running (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(left)
        return True

    def settle(self, snapshot: Snapshot) -> Snapshot:
        """Waits for the fingerprints of ``snapshot``'s pending containers (each bounded
        by its budget) and puts them in: what one-off commands print."""
        pending = [
            c for c in snapshot.containers if c.fingerprint is not None and c.fingerprint.pending
        ]
        self.wait(START_SECONDS + len(pending) * (self.max_seconds + GRACE_SECONDS))
        for c in pending:
            c.fingerprint = self.current(c.id) or c.fingerprint
        return snapshot

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
            self._cond.notify_all()
        os.write(self._wake_w, b"x")  # wakes the thread if it is waiting on an answer
        self._thread.join(timeout=5.0)
        for w in [*self._stuck.values(), *([worker] if worker else [])]:
            w.kill(wait=0)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- the worker side ---------------------------------------------------------------

    def _startable(self) -> bool:
        if not self._queue:
            return False
        if self.pass_seconds is not None and self._spent >= self.pass_seconds:
            return False
        if len(self._stuck) >= MAX_STUCK:
            return False
        return time.monotonic() >= self._next_start

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._startable():
                    later = self._next_start - time.monotonic()
                    timeout = later if self._queue and later > 0 else None
                    if self._stuck:  # look again now and then whether they are gone
                        timeout = min(timeout or 1.0, 1.0)
                    self._cond.wait(timeout)
                    self._reap()
                if self._closed:
                    return
                cid, pids = self._queue.popitem(last=False)
                self._running = cid
            t0 = time.monotonic()
            try:
                fp, chosen, failed = self._job(pids)
            except Exception as e:  # a bug here must cost one container, not the thread
                fp, chosen, failed = Fingerprint(error=f"fingerprint failed: {e!r}"), None, True
            elapsed = time.monotonic() - t0
            with self._cond:
                self._running = None
                self._spent += elapsed
                self.stats.busy_seconds += elapsed
                if cid in self._seen or cid in self._known:
                    self._record(cid, pids, fp, chosen, failed)
                self._cond.notify_all()
            self._reap()

    def _job(self, pids: list[int]) -> tuple[Fingerprint, Chosen | None, bool]:
        """One container through the worker: (fingerprint, its process, failed?), where
        failures (a budget spent, the worker stuck or dead) are the fingerprint's error."""
        try:
            worker = self._ensure_worker()
        except WorkerFailed as e:
            return Fingerprint(error=str(e)), None, True
        self.stats.jobs += 1
        job = self.stats.jobs
        deadline = time.monotonic() + self.max_seconds + GRACE_SECONDS
        try:
            worker.send({"job": job, "pids": pids, "alone": self.alone})
            while True:
                message = worker.receive(deadline, self._wake_r)
                if message is None:
                    self._abandon(worker, stuck_on=self._running)
                    error = (
                        f"time budget of {self.max_seconds:g}s exceeded: no answer, the "
                        "fingerprint worker was stopped and restarted"
                    )
                    return Fingerprint(error=error), None, True
                if message.get("job") == job:
                    break
        except WorkerFailed as e:
            self._abandon(worker)
            return Fingerprint(error=str(e)), None, True
        self.stats.answers += 1
        fields, chosen = message.get("fields"), message.get("chosen")
        try:
            fp = Fingerprint.model_validate(fields)
            pick = Chosen(int(chosen[0]), int(chosen[1])) if isinstance(chosen, list) else None
        except (ValueError, TypeError, IndexError) as e:
            return Fingerprint(error=f"fingerprint worker answer unusable: {e}"), None, True
        return fp, pick, bool(message.get("overBudget"))

    def _record(
        self, cid: str, pids: list[int], fp: Fingerprint, chosen: Chosen | None, failed: bool
    ) -> None:
        """Keep the outcome; a failure also sets when to try again (the delay doubling
        with each failure in a row, up to MAX_RETRY_SECONDS), an answer without a kind
        when to look again (doubling too, MAX_RECHECKS times)."""
        known = _Known(fp, chosen, sorted(pids))
        previous = self._known.get(cid)
        if not failed and fp.kind is None and chosen is not None:
            known.kindless = (previous.kindless if previous is not None else 0) + 1
            if known.kindless <= MAX_RECHECKS:
                delay = self.recheck_seconds * 2 ** (known.kindless - 1)
                known.recheck_at = self.clock() + min(delay, MAX_RETRY_SECONDS)
        if failed:
            known.failures = (previous.failures if previous is not None else 0) + 1
            delay = min(self.retry_seconds * 2 ** (known.failures - 1), MAX_RETRY_SECONDS)
            known.retry_at = self.clock() + delay
            error = f"{fp.error or 'fingerprint failed'}; next attempt in {delay:g}s"
            known.fingerprint = fp.model_copy(update={"error": error})
        self._known[cid] = known

    def _ensure_worker(self) -> _Worker:
        with self._cond:
            if self._worker is not None:
                return self._worker
            if self._closed:
                raise WorkerFailed("fingerprints closed")
        try:
            worker = _Worker(self.argv)
        except OSError as e:
            self._start_failed()
            raise WorkerFailed(f"fingerprint worker did not start: {e.strerror or e}") from None
        self.stats.worker_starts += 1
        with self._cond:
            self._worker = worker
            closed = self._closed
        if closed:
            worker.kill()
            raise WorkerFailed("fingerprints closed")
        try:
            ready = worker.receive(time.monotonic() + START_SECONDS, self._wake_r)
        except WorkerFailed as e:
            ready = None
            reason = str(e)
        else:
            reason = "not ready in time"
        if ready is None or "ready" not in ready:
            self._abandon(worker)
            self._start_failed()
            raise WorkerFailed(f"fingerprint worker did not start: {reason}")
        self._start_failures = 0
        self.stats.last_ready = ready
        return worker

    def _start_failed(self) -> None:
        self._start_failures += 1
        delay = min(2.0 ** (self._start_failures - 1), 60.0)
        self._next_start = time.monotonic() + delay
        log.warning("fingerprint worker failed to start; next try in %gs", delay)

    def _abandon(self, worker: _Worker, stuck_on: str | None = None) -> None:
        self.stats.abandoned += 1
        with self._cond:
            if self._worker is worker:
                self._worker = None
        if not worker.kill():
            with self._cond:
                self._stuck[stuck_on or f"worker {worker.proc.pid}"] = worker

    def _reap(self) -> None:
        with self._cond:
            for cid, worker in list(self._stuck.items()):
                if worker.proc.poll() is not None:
                    del self._stuck[cid]
                    self._cond.notify_all()
