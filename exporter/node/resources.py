"""Requests and limits of containers and pods, in cores and bytes, as Kubernetes adds them.

A container's are its spec's. A pod's are what the scheduler reserves and the kubelet
enforces (the rule of k8s.io/component-helpers ``PodRequests``): the regular containers
and restartable init containers (sidecars) run together, so they add up; an ordinary
init container runs alone with the sidecars started before it, so the pod needs the
larger of the two sums; the RuntimeClass overhead comes on top. A pod has no request for
a resource when none of its containers asks for it, and no limit when any container
that may run lacks one (the kubelet then sets no limit on the pod cgroup either).
Ephemeral containers take no resources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from exporter.kube.podmeta import ContainerStatus, PodMeta


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container or pod; None: not set."""

    cpu_request_cores: float | None = None
    cpu_limit_cores: float | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None


NONE = Resources()


def _cores(millicores: int | None) -> float | None:
    return None if millicores is None else millicores / 1000


def container_resources(status: ContainerStatus | None) -> Resources:
    if status is None:
        return NONE
    return Resources(
        cpu_request_cores=_cores(status.cpu_request_millicores),
        cpu_limit_cores=_cores(status.cpu_limit_millicores),
        memory_request_bytes=status.memory_request_bytes,
        memory_limit_bytes=status.memory_limit_bytes,
    )


def _effective(
    containers: Iterable[ContainerStatus], amount: Callable[[ContainerStatus], int | None]
) -> int:
    """PodRequests' sum: regular and sidecars together, or the largest init phase."""
    running = 0
    sidecars = 0
    init_peak = 0
    for c in containers:
        value = amount(c) or 0
        if c.kind == "regular":
            running += value
        elif c.kind == "sidecar":
            running += value
            sidecars += value
            init_peak = max(init_peak, sidecars)
        elif c.kind == "init":
            init_peak = max(init_peak, value + sidecars)
    return max(running, init_peak)


def _pod_amount(
    meta: PodMeta, amount: Callable[[ContainerStatus], int | None], overhead: int | None
) -> tuple[int | None, bool]:
    """(the effective sum plus overhead, whether every container that may run sets it)."""
    members = [c for c in meta.containers if c.kind != "ephemeral"]
    if not members:
        return None, False
    every = all(amount(c) is not None for c in members)
    if not any(amount(c) is not None for c in members):
        return None, False
    return _effective(members, amount) + (overhead or 0), every


def pod_resources(meta: PodMeta | None) -> Resources:
    """The pod's effective requests and limits (see the module's docstring)."""
    if meta is None:
        return NONE
    cpu_req, _ = _pod_amount(meta, lambda c: c.cpu_request_millicores, meta.overhead_cpu_millicores)
    mem_req, _ = _pod_amount(meta, lambda c: c.memory_request_bytes, meta.overhead_memory_bytes)
    cpu_lim, cpu_all = _pod_amount(
        meta, lambda c: c.cpu_limit_millicores, meta.overhead_cpu_millicores
    )
    mem_lim, mem_all = _pod_amount(meta, lambda c: c.memory_limit_bytes, meta.overhead_memory_bytes)
    return Resources(
        cpu_request_cores=_cores(cpu_req),
        cpu_limit_cores=_cores(cpu_lim) if cpu_all else None,
        memory_request_bytes=mem_req,
        memory_limit_bytes=mem_lim if mem_all else None,
    )
