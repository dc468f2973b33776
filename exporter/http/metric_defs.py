"""What a custom metric is: a field of a pod or of its containers, filtered and aggregated.

Why one model for built-in and user-defined metrics: the custom metrics API, the external
metrics API and ``/metrics`` must compute a metric the same way whoever defined it, and
users define metrics by data (exporter/http/definitions.py), never by code run in the
exporter. A metric's value for one pod is its field read from the pod cgroup
(``pod.…``) or aggregated over the pod's matching containers (``container.…``); for an
object, a namespace or an external query the pods' values are aggregated again: ``sum``
and ``max`` as named, ``avg`` the mean of the pods' values, ``count`` the sum of the pods'
counts. Field names are those of the ``/v1/pods`` and ``/v1/containers`` documents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from exporter.kube.selectors import Selector
from exporter.node.views import ContainerView, PodView
from extractor.contract import Usage

Aggregation = Literal["sum", "avg", "max", "count"]
EVERY_POD = Selector()
Number = float | int
AGGREGATIONS: tuple[Aggregation, ...] = ("sum", "avg", "max", "count")


def _cpu(usage: Usage | None, attr: str, scale: float = 1e9) -> Number | None:
    cpu = usage.cpu if usage else None
    value = getattr(cpu, attr, None) if cpu else None
    return None if value is None else (value / scale if scale != 1 else value)


def _mem(usage: Usage | None, attr: str) -> Number | None:
    mem = usage.memory if usage else None
    value: int | None = getattr(mem, attr, None) if mem else None
    return value


def _usage_fields(
    usage: Callable[[object], Usage | None],
) -> dict[str, Callable[[object], Number | None]]:
    return {
        "cpu.totalSeconds": lambda v: _cpu(usage(v), "usage_ns"),
        "cpu.userSeconds": lambda v: _cpu(usage(v), "user_ns"),
        "cpu.systemSeconds": lambda v: _cpu(usage(v), "system_ns"),
        "cpu.throttledSeconds": lambda v: _cpu(usage(v), "throttled_ns"),
        "cpu.periods": lambda v: _cpu(usage(v), "periods", 1),
        "cpu.throttledPeriods": lambda v: _cpu(usage(v), "throttled_periods", 1),
        "memory.currentBytes": lambda v: _mem(usage(v), "current_bytes"),
        "memory.peakBytes": lambda v: _mem(usage(v), "peak_bytes"),
        "memory.workingSetBytes": lambda v: _mem(usage(v), "working_set_bytes"),
        "memory.limitBytes": lambda v: _mem(usage(v), "limit_bytes"),
    }


def _container_usage(cv: object) -> Usage | None:
    assert isinstance(cv, ContainerView)
    return cv.container.usage


def _pod_usage(pv: object) -> Usage | None:
    assert isinstance(pv, PodView)
    return pv.pod.usage if pv.pod else None


def _cv(read: Callable[[ContainerView], Number | None]) -> Callable[[object], Number | None]:
    return lambda v: read(v) if isinstance(v, ContainerView) else None


def _pv(read: Callable[[PodView], Number | None]) -> Callable[[object], Number | None]:
    return lambda v: read(v) if isinstance(v, PodView) else None


CONTAINER_FIELDS: dict[str, Callable[[object], Number | None]] = {
    **_usage_fields(_container_usage),
    "cpu.usageRateCores": _cv(lambda cv: cv.cpu_rate),
    "processes": _cv(lambda cv: len(cv.container.pids)),
    "restarts": _cv(lambda cv: cv.status.restart_count if cv.status else None),
    "runtimeSeconds": _cv(lambda cv: cv.container.runtime_seconds),
}
POD_FIELDS: dict[str, Callable[[object], Number | None]] = {
    **_usage_fields(_pod_usage),
    "cpu.usageRateCores": _pv(lambda pv: pv.cpu_rate),
    "runtimeSeconds": _pv(lambda pv: pv.runtime_seconds),
    "restarts": _pv(
        lambda pv: (
            sum(cv.status.restart_count for cv in pv.containers if cv.status) if pv.meta else None
        )
    ),
    "containers": _pv(lambda pv: len(pv.containers)),
}
RATE_FIELDS = frozenset({"pod.cpu.usageRateCores", "container.cpu.usageRateCores"})
"""Fields computed between two snapshots: their answers carry the window's length."""


def field_names() -> list[str]:
    return [f"pod.{n}" for n in POD_FIELDS] + [f"container.{n}" for n in CONTAINER_FIELDS]


@dataclass(frozen=True)
class MetricDef:
    """One metric: where its value comes from, which pods and containers count, and how
    values are combined."""

    name: str
    field: str | None
    """``pod.<field>`` or ``container.<field>``; None only for ``count`` (of containers)."""
    aggregation: Aggregation
    description: str = ""
    pods: Selector = EVERY_POD
    """Only pods whose labels match."""
    kinds: frozenset[str] = frozenset()
    """Only containers whose fingerprint kind is one of these (empty: any); for a pod
    field, pods with at least one such container."""
    containers: frozenset[str] = frozenset()
    """Only containers of these names (empty: any)."""
    builtin: bool = False

    @property
    def windowed(self) -> bool:
        return self.field in RATE_FIELDS

    @property
    def per_container(self) -> bool:
        return self.field is None or self.field.startswith("container.")

    def _container_matches(self, cv: ContainerView) -> bool:
        kind = cv.container.fingerprint.kind if cv.container.fingerprint else None
        return (not self.kinds or kind in self.kinds) and (
            not self.containers or cv.name in self.containers
        )

    def selects(self, pv: PodView) -> bool:
        """Whether the pod is one this metric reports on at all (label filter)."""
        return self.pods.matches(pv.meta.labels if pv.meta else {})

    def pod_value(self, pv: PodView) -> Decimal | None:
        """This metric for one pod; None when the pod does not count or has no value."""
        if not self.selects(pv):
            return None
        matching = [cv for cv in pv.containers if self._container_matches(cv)]
        if not self.per_container:
            if (self.kinds or self.containers) and not matching:
                return None
            assert self.field is not None
            return _decimal(POD_FIELDS[self.field.removeprefix("pod.")](pv))
        if self.field is None:
            return Decimal(len(matching))
        read = CONTAINER_FIELDS[self.field.removeprefix("container.")]
        values = [d for cv in matching if (d := _decimal(read(cv))) is not None]
        if self.aggregation == "count":
            return Decimal(len(values))
        # a pod without a container the metric reads is not reported (never a made-up 0)
        return combine(self.aggregation, values) if values else None

    def combine(self, values: Sequence[Decimal]) -> Decimal | None:
        """The pods' values as one, for an object, a namespace or an external query."""
        return combine("sum" if self.aggregation == "count" else self.aggregation, values)


def _decimal(value: Number | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def combine(aggregation: Aggregation, values: Sequence[Decimal]) -> Decimal | None:
    """Values of several containers or pods as one (None for the avg or max of nothing)."""
    if aggregation in ("sum", "count"):
        return sum(values, Decimal(0))
    if not values:
        return None
    if aggregation == "max":
        return max(values)
    return sum(values, Decimal(0)) / len(values)


BUILTIN: tuple[MetricDef, ...] = (
    MetricDef(
        "cpu_usage_rate",
        "pod.cpu.usageRateCores",
        "sum",
        "cores used between the last two snapshots",
        builtin=True,
    ),
    MetricDef(
        "cpu_seconds_total",
        "pod.cpu.totalSeconds",
        "sum",
        "cumulative CPU seconds of the pod cgroup",
        builtin=True,
    ),
    MetricDef(
        "memory_working_set_bytes",
        "pod.memory.workingSetBytes",
        "sum",
        "working set of the pod cgroup",
        builtin=True,
    ),
    MetricDef(
        "runtime_seconds",
        "pod.runtimeSeconds",
        "max",
        "age of the pod's oldest container",
        builtin=True,
    ),
)
