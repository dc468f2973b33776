"""One container's fingerprint: choose its processes, run OS + detectors, merge, cache.

Fingerprinting reads binaries and files, so its result is cached per container and
reused while the same chosen process (pid *and* start time) is alive: a warm pass costs
one ``/proc/<pid>/stat`` read per container (``hostfs/liveness.py``). Nothing here
raises: failures, hostile roots and detector bugs end up in the fingerprint's ``error``
with partial results kept, and every value is checked for its field's form
(``fingerprints/values.py``) before it leaves.

``compute`` is the uncached part, for a caller that keeps results itself (the worker
process of ``fingerprints/worker.py``); ``fingerprint`` caches in process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from fingerprints.base import Detection, Detector, FingerprintError, ProcessView
from fingerprints.detectors.os_release import detect_os
from fingerprints.reading.processes import (
    MAX_PROCESSES,
    Candidate,
    ProcessesDenied,
    choose,
    read_view,
)
from fingerprints.reading.rootfs import Budget, BudgetExceeded, ConfinedRoot
from fingerprints.result import Component, Result
from fingerprints.values import checked
from hostfs import Chosen, reusable

MAX_CACHE = 8192
"""Hard cap on cached containers, whatever the caller's pass pattern."""
_FIELDS = frozenset(f.name for f in fields(Result))
"""Names a detector's ``extra`` may not take: they belong to the fixed fields."""


@dataclass(frozen=True)
class Computed:
    """A freshly computed fingerprint, the process it was read from (None when no live
    process could be chosen) and whether a budget stopped it early."""

    result: Result
    chosen: Chosen | None = None
    over_budget: bool = False


@dataclass
class _Entry:
    chosen: Chosen
    pids: list[int]
    result: Result


@dataclass
class _Merge:
    """Detections of all chosen processes folded into Fingerprint fields."""

    kind: Detection | None = None
    runtimes: dict[str, str | None] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, det: Detection) -> None:
        if det.kind and self.kind is None:
            self.kind = det
        for name, version in det.runtimes:
            if self.runtimes.get(name) is None:
                self.runtimes[name] = version
        for key, value in det.extra.items():
            self.extra.setdefault(key, value)


def _name(detector: Detector) -> str:
    return f"{getattr(detector, '__module__', '?')}.{getattr(detector, '__name__', '?')}"


class Fingerprinter:
    """Fingerprints containers from the host's /proc, with a per-container cache."""

    def __init__(
        self,
        proc_root: str = "/proc",
        detectors: Sequence[Detector] | None = None,
        max_seconds: float = 5.0,
        max_bytes: int = 64 << 20,
        max_processes: int = MAX_PROCESSES,
    ) -> None:
        if detectors is None:
            from fingerprints.detectors.registry import DETECTORS

            detectors = DETECTORS
        self.proc_root = proc_root
        self.detectors = list(detectors)
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.max_processes = max_processes
        self._cache: dict[str, _Entry] = {}
        self._pass: set[str] = set()
        self.computed = 0
        """How many fingerprints were computed rather than served from the cache."""

    def fingerprint(self, container_id: str, pids: list[int]) -> Result:
        """The container's fingerprint; errors are reported in it, never raised."""
        self._note_pass(container_id)
        entry = self._cache.get(container_id)
        if entry is not None and reusable(
            self.proc_root, entry.chosen, entry.result.kind is not None, entry.pids, pids
        ):
            return entry.result
        done = self.compute(pids)
        if done.chosen is not None:
            # cached even with an error: a hostile root must not cost a full budget per pass
            self._cache[container_id] = _Entry(done.chosen, sorted(pids), done.result)
        return done.result

    def compute(self, pids: list[int], alone: bool = False) -> Computed:
        """The fingerprint of the container whose processes are ``pids``, nothing cached;
        ``alone``: of those processes only, not their descendants (a host process)."""
        self.computed += 1
        try:
            candidates = choose(self.proc_root, pids, self.max_processes, descendants=not alone)
            result, over_budget = self._compute(candidates)
        except ProcessesDenied as e:
            return Computed(checked(Result(error=str(e))))
        except Exception as e:  # last line: a bug must cost one container, not the pass
            return Computed(checked(Result(error=f"fingerprint failed: {type(e).__name__}: {e}")))
        if not candidates:
            return Computed(result)
        first = candidates[0]
        return Computed(result, Chosen(first.pid, first.start_ticks), over_budget)

    def _note_pass(self, container_id: str) -> None:
        """A container seen twice means a new pass began: forget the ones that vanished."""
        if container_id in self._pass or len(self._cache) >= MAX_CACHE:
            for cid in set(self._cache) - self._pass:
                del self._cache[cid]
            self._pass = set()
        self._pass.add(container_id)

    def _compute(self, chosen: list[Candidate]) -> tuple[Result, bool]:
        """The merged, checked result and whether a budget cut it short."""
        if not chosen:
            return Result(error="no live process to fingerprint"), False
        budget = Budget(self.max_seconds, self.max_bytes)
        merge = _Merge()
        os_id = os_version = None
        over_budget = False
        root = ConfinedRoot(f"{self.proc_root}/{chosen[0].pid}/root", budget)
        try:
            info = detect_os(root)
            if info is not None:
                os_id, os_version = info.id, info.version
                merge.extra.update(info.extra)
            for cand in chosen:
                self._run_detectors(cand, root, budget, merge)
        except BudgetExceeded as e:
            merge.errors.append(str(e))
            over_budget = True
        except (FingerprintError, OSError) as e:
            merge.errors.append(f"pid {chosen[0].pid}: {e}")
        if root.denied:
            # detectors read an unreadable file as absent: say what was refused and why
            merge.errors.append(
                f"permission denied in the container's root: {', '.join(root.denied)} "
                "(reading files whatever their mode needs CAP_DAC_READ_SEARCH)"
            )
        kind = merge.kind or Detection()
        result = Result(
            os=os_id,
            osVersion=os_version,
            kind=kind.kind,
            kindVersion=kind.kind_version,
            kindImplementer=kind.kind_implementer,
            runtimes=tuple(Component(n, v) for n, v in merge.runtimes.items()),
            extra=MappingProxyType({k: v for k, v in merge.extra.items() if k not in _FIELDS}),
            error="; ".join(merge.errors) or None,
        )
        return checked(result), over_budget

    def _run_detectors(
        self, cand: Candidate, root: ConfinedRoot, budget: Budget, merge: _Merge
    ) -> None:
        """Every detector on one process; one failing detector does not stop the others."""
        try:
            view, files = read_view(self.proc_root, cand, root, budget)
        except (FingerprintError, OSError) as e:
            merge.errors.append(f"pid {cand.pid}: {e}")
            return
        try:
            for detector in self.detectors:
                det = self._run_one(detector, view, merge)
                if det is not None:
                    merge.add(det)
        finally:
            files.close()

    @staticmethod
    def _run_one(detector: Detector, view: ProcessView, merge: _Merge) -> Detection | None:
        try:
            return detector(view)
        except BudgetExceeded:
            raise
        except (FingerprintError, OSError) as e:
            merge.errors.append(f"{_name(detector)} on pid {view.pid}: {e}")
        except Exception as e:  # a detector bug costs its own result only
            merge.errors.append(f"{_name(detector)} on pid {view.pid}: bug: {e!r}")
        return None
