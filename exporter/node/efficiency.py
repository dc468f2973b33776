"""Usage against requests: efficiency, what a cost tool bills, and the idle part.

Per container or pod: CPU used (cores, the rate between the last two snapshots) and the
working set (bytes) against their requests; ``billable`` is ``max(request, usage)`` — a
request is reserved whether it is used or not, usage beyond it is taken all the same —
and ``idle`` is ``max(request − usage, 0)``, the reserved part nobody used, so that
``billable = usage + idle``. Efficiency is usage ÷ request, absent without a request.

Totals (per owner, per namespace, per cluster in ``collect``) add the pods' figures;
their efficiency is the usage of the pods that request the resource over those
requests, so pods without requests neither inflate nor dilute it (their usage still
counts in ``used`` and ``billable``). A pod whose usage is not known yet (one snapshot
only) counts in ``pods`` and its request in ``requested``, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.node.resources import Resources


@dataclass(frozen=True)
class Use:
    """What one container or pod uses and asks for."""

    cpu_cores: float | None
    memory_bytes: int | None
    resources: Resources


def _one(used: float | None, request: float | None) -> dict[str, float | None]:
    if used is None:
        return {"efficiency": None, "billable": None, "idle": None}
    if request is None:
        return {"efficiency": None, "billable": used, "idle": 0.0}
    return {
        "efficiency": used / request if request else None,
        "billable": max(request, used),
        "idle": max(request - used, 0.0),
    }


def efficiency_fields(use: Use) -> dict[str, object]:
    """The ``efficiency`` object of one container or pod document."""
    r = use.resources
    cpu = _one(use.cpu_cores, r.cpu_request_cores)
    memory_bytes = None if use.memory_bytes is None else float(use.memory_bytes)
    memory = _one(memory_bytes, r.memory_request_bytes)
    return {
        "cpu": {
            "efficiency": cpu["efficiency"],
            "billableCores": cpu["billable"],
            "idleCores": cpu["idle"],
        },
        "memory": {
            "efficiency": memory["efficiency"],
            "billableBytes": memory["billable"],
            "idleBytes": memory["idle"],
        },
    }


@dataclass
class _Sum:
    """One resource's totals."""

    used: float = 0.0
    requested: float = 0.0
    limits: float = 0.0
    billable: float = 0.0
    idle: float = 0.0
    used_of_requesting: float = 0.0
    requested_with_use: float = 0.0

    def add(self, used: float | None, request: float | None, limit: float | None) -> None:
        if request is not None:
            self.requested += request
        if limit is not None:
            self.limits += limit
        if used is None:
            return
        self.used += used
        one = _one(used, request)
        self.billable += one["billable"] or 0.0
        self.idle += one["idle"] or 0.0
        if request:
            self.used_of_requesting += used
            self.requested_with_use += request

    def merge(self, other: _Sum) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def efficiency(self) -> float | None:
        if not self.requested_with_use:
            return None
        return self.used_of_requesting / self.requested_with_use


@dataclass
class Totals:
    """Pods added up: counts, usage, requests, limits, billable and idle, efficiency."""

    pods: int = 0
    cpu: _Sum = field(default_factory=_Sum)
    memory: _Sum = field(default_factory=_Sum)

    def add(self, use: Use) -> None:
        r = use.resources
        self.pods += 1
        self.cpu.add(use.cpu_cores, r.cpu_request_cores, r.cpu_limit_cores)
        memory = None if use.memory_bytes is None else float(use.memory_bytes)
        self.memory.add(
            memory,
            None if r.memory_request_bytes is None else float(r.memory_request_bytes),
            None if r.memory_limit_bytes is None else float(r.memory_limit_bytes),
        )

    def merge(self, other: Totals) -> None:
        self.pods += other.pods
        self.cpu.merge(other.cpu)
        self.memory.merge(other.memory)

    def document(self) -> dict[str, object]:
        c, m = self.cpu, self.memory
        return {
            "pods": self.pods,
            "cpu": {
                "usedCores": c.used,
                "requestedCores": c.requested,
                "limitCores": c.limits,
                "efficiency": c.efficiency(),
                "billableCores": c.billable,
                "idleCores": c.idle,
            },
            "memory": {
                "workingSetBytes": m.used,
                "requestedBytes": m.requested,
                "limitBytes": m.limits,
                "efficiency": m.efficiency(),
                "billableBytes": m.billable,
                "idleBytes": m.idle,
            },
        }


@dataclass(frozen=True)
class PodUse:
    """A pod's use with where it belongs: namespace and top owner."""

    namespace: str
    owner_kind: str | None
    owner_name: str | None
    use: Use


def namespace_documents(pods: Iterable[PodUse]) -> list[dict[str, object]]:
    """Per namespace, sorted: its totals, then its owners' (pods without an owner are
    listed as ``{"kind": null, "name": null}``)."""
    namespaces: dict[str, Totals] = {}
    owners: dict[str, dict[tuple[str | None, str | None], Totals]] = {}
    for pod in pods:
        namespaces.setdefault(pod.namespace, Totals()).add(pod.use)
        key = (pod.owner_kind, pod.owner_name)
        owners.setdefault(pod.namespace, {}).setdefault(key, Totals()).add(pod.use)
    out: list[dict[str, object]] = []
    for name in sorted(namespaces):
        owned = owners[name]
        out.append(
            {
                "namespace": name,
                **namespaces[name].document(),
                "owners": [
                    {"kind": kind, "name": owner, **owned[(kind, owner)].document()}
                    for kind, owner in sorted(owned, key=lambda k: (k[0] or "", k[1] or ""))
                ],
            }
        )
    return out
