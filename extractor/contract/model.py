"""The Snapshot: the versioned wire contract between the extractor and the exporter.

Counters are kept as the kernel's integers (nanoseconds, bytes, counts) so that the
exporter can meter exact deltas; seconds are derived only for people. Every field the
kernel may not offer (an older kernel, a controller that is not enabled) is optional, and
a failure to read something goes into an ``errors`` list instead of aborting the pass.

Times come in pairs: ``*_at`` is unix seconds (for people and for OpenMeter), and
``*_boottime`` the same instant on the node's CLOCK_BOOTTIME (``hostfs.clock``), which
never steps: the meter orders and measures on it, within one ``boot_id``.

``SCHEMA_VERSION`` rises whenever fields are added. Added fields are always optional, so
a reader validates every older snapshot (what was not there reads as ``None``); a reader
refuses a newer one, whose fields it does not know, by its version alone
(``exporter/node/source.py`` checks it before validating the rest).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
"""1: CPU, memory, pids, exited pods, boot times. 2: CFS quota and period, OOM kills, RSS
and cache, pressure stall information, block I/O, pod network, ``block_devices``,
container cgroups."""

Runtime = Literal["containerd", "crio", "docker", "podman", "unknown"]
Qos = Literal["guaranteed", "burstable", "besteffort"]
CgroupVersion = Literal["v1", "v2", "hybrid"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Cpu(_Model):
    """Cumulative CPU counters of one cgroup, converted to nanoseconds."""

    usage_ns: int
    user_ns: int | None = None
    system_ns: int | None = None
    throttled_ns: int | None = None
    periods: int | None = None
    throttled_periods: int | None = None
    quota_us: int | None = Field(
        default=None,
        description="CFS quota per period in µs (v1 cfs_quota_us, v2 cpu.max); None: no quota",
    )
    period_us: int | None = Field(default=None, description="CFS period in µs")


class Memory(_Model):
    """Memory of one cgroup in bytes; working set is usage minus inactive file, as cAdvisor."""

    current_bytes: int | None = None
    peak_bytes: int | None = None
    working_set_bytes: int | None = None
    limit_bytes: int | None = None
    rss_bytes: int | None = Field(
        default=None, description="anonymous memory (memory.stat v2 anon, v1 total_rss)"
    )
    cache_bytes: int | None = Field(
        default=None, description="page cache (memory.stat v2 file, v1 total_cache)"
    )
    oom_kills: int | None = Field(
        default=None,
        description="processes the OOM killer killed: v2 memory.events oom_kill (this cgroup "
        "and below), v1 memory.oom_control oom_kill (this cgroup's own processes only)",
    )


class Pressure(_Model):
    """Pressure stall information: cumulative stalled time in ns (the kernel's ``total=``
    µs × 1000) since the cgroup was created, from cgroup v2 ``cpu.pressure``,
    ``memory.pressure``, ``io.pressure`` (on a hybrid node from the cgroup's directory in
    the unified hierarchy). ``some``: at least one task stalled on the resource; ``full``:
    all non-idle tasks stalled at once (cpu's since Linux 5.13)."""

    cpu_some_ns: int | None = None
    cpu_full_ns: int | None = None
    memory_some_ns: int | None = None
    memory_full_ns: int | None = None
    io_some_ns: int | None = None
    io_full_ns: int | None = None


class BlockDevice(_Model):
    """Bytes and operations one cgroup (and those below it) issued to one block device:
    v2 ``io.stat``, v1 ``blkio.throttle.io_service_bytes_recursive``/``io_serviced_recursive``
    (whose name is in ``Snapshot.block_devices``)."""

    major: int
    minor: int
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0


class Interface(_Model):
    """One network interface of a pod's network namespace, from ``/proc/<pid>/net/dev``."""

    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


class Usage(_Model):
    """What the kernel accounts for one cgroup directory."""

    cgroup: str = Field(description="host-absolute cgroup path, e.g. /kubepods/burstable/pod…/…")
    cpu: Cpu | None = None
    memory: Memory | None = None
    pids: int | None = None
    pressure: Pressure | None = None
    block_io: list[BlockDevice] | None = None
    details_at: float | None = Field(
        default=None,
        description="unix seconds when peak, pids, limits, quota, OOM kills, block I/O and "
        "pressure were read, when that was before the rest: a long-lived extractor "
        "re-reads them every few passes only (one that finds the same values keeps the "
        "earlier time, for a while); None: read with the rest",
    )


class RuntimeComponent(_Model):
    """A framework or server found inside a runtime (Spring Boot, Quarkus, Tomcat, …)."""

    name: str
    version: str | None = None


class Fingerprint(BaseModel):
    """OS and language runtime of a container, in insights-runtime-extractor's field names.

    Those names are a contract with that tool's consumers; further detectors may add
    fields under new names (hence ``extra="allow"``), never rename these. ``pending``
    is true (and nothing else set) for a container whose fingerprint is still being
    computed beside the passes: its counters come first, its fingerprint a pass later.
    """

    model_config = ConfigDict(extra="allow")

    os: str | None = None
    osVersion: str | None = None  # insights-runtime-extractor field names (camelCase)
    kind: str | None = None
    kindVersion: str | None = None
    kindImplementer: str | None = None
    runtimes: list[RuntimeComponent] = Field(default_factory=list)
    error: str | None = None
    pending: bool | None = None

    def compatible(self) -> dict[str, object]:
        """The insights-runtime-extractor view: its fields only, empty ones omitted (that
        tool's ``omitempty``: a runtime without a version has no ``version``, one without
        a name is no runtime), so nothing empty is ever hashed or sent."""
        out: dict[str, object] = {}
        for key in ("os", "osVersion", "kind", "kindVersion", "kindImplementer"):
            value = getattr(self, key)
            if value:
                out[key] = value
        runtimes = [
            {"name": r.name, "version": r.version} if r.version else {"name": r.name}
            for r in self.runtimes
            if r.name
        ]
        if runtimes:
            out["runtimes"] = runtimes
        return out


def runtime_seconds(
    taken_at: float,
    started_at: float | None,
    taken_boottime: float | None = None,
    started_boottime: float | None = None,
) -> float | None:
    """``Container.runtime_seconds``: how long it has run when the snapshot was taken, on
    the boot clock when both moments are on it (it never steps), else on the wall clock.

    Derived, never measured: the extractor sets it with this function and a reader of
    snapshots by difference (``changes``) computes it with the same one, so both agree to
    the bit and an unchanged container need not be sent again just because time passed.
    """
    if taken_boottime is not None and started_boottime is not None:
        return max(taken_boottime - started_boottime, 0.0)
    return None if started_at is None else max(taken_at - started_at, 0.0)


class Container(_Model):
    """One container cgroup found on the node."""

    id: str
    runtime: Runtime
    name: str | None = None
    namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    qos: Qos | None = None
    sandbox: bool = False
    sandbox_id: str | None = None
    image: str | None = None
    cgroup: str | None = Field(
        default=None,
        description="host-absolute cgroup path, also of a sandbox (whose usage is not read)",
    )
    pids: list[int] = Field(default_factory=list)
    started_at: float | None = Field(default=None, description="unix seconds")
    started_boottime: float | None = Field(
        default=None,
        description="CLOCK_BOOTTIME seconds of its first process's start (kernel ticks: the "
        "true start is less than one tick later)",
    )
    filled_boottime: float | None = Field(
        default=None,
        description="CLOCK_BOOTTIME seconds at which the exit watcher saw the container's "
        "cgroup fill: its start as the kernel accounts it, even when the pass first met "
        "only its later processes",
    )
    runtime_seconds: float | None = None
    usage: Usage | None = None
    fingerprint: Fingerprint | None = None
    errors: list[str] = Field(default_factory=list)


class Pod(_Model):
    """A pod's own cgroup: its counters keep the CPU of containers that already exited.

    ``started_at`` and ``exited_at`` are set on exited pods (``Snapshot.exited_pods``):
    when the extractor met the pod's cgroup (at its creation when it saw that happen) and
    when the pod's last process was gone, read from the kernel's ``populated`` flag.
    ``exited_late``: the extractor did not see the exit happen (it found the cgroup empty
    when it started or rescanned), so ``exited_at`` is the last moment the pod was known
    to run and the true exit came later, before the snapshot.
    """

    uid: str
    namespace: str | None = None
    name: str | None = None
    qos: Qos | None = None
    usage: Usage | None = None
    container_ids: list[str] = Field(default_factory=list)
    started_at: float | None = Field(default=None, description="unix seconds")
    started_boottime: float | None = None
    exited_at: float | None = Field(default=None, description="unix seconds")
    exited_boottime: float | None = None
    exited_late: bool = False
    network: list[Interface] | None = Field(
        default=None,
        description="the pod's network namespace, loopback and veth/docker bridges left out "
        "as cAdvisor leaves them; None when not read (no process, or ``host_network``)",
    )
    host_network: bool | None = Field(
        default=None, description="the pod's processes share the host's network namespace"
    )
    network_at: float | None = Field(
        default=None,
        description="unix seconds: when ``network`` was read (with the pod cgroup's "
        "details, every few passes; a reading that finds the same counters keeps the "
        "earlier stamp for a while)",
    )
    errors: list[str] = Field(default_factory=list)


class ExitedContainer(_Model):
    """One run of a container that ended: when its cgroup filled and emptied, and its
    counters read at that moment (``usage``; None when the runtime removed the cgroup
    first). Containers shorter than a pass are only ever seen here."""

    id: str
    pod_uid: str
    name: str | None = None
    sandbox: bool = False
    started_at: float | None = Field(default=None, description="unix seconds")
    started_boottime: float | None = None
    exited_at: float = Field(description="unix seconds")
    exited_boottime: float
    exited_late: bool = False
    usage: Usage | None = None


class Snapshot(_Model):
    """One pass over a node."""

    schema_version: int = SCHEMA_VERSION
    node: str
    taken_at: float = Field(description="unix seconds when the pass started")
    taken_boottime: float | None = Field(
        default=None, description="the same instant on CLOCK_BOOTTIME"
    )
    boot_id: str | None = Field(
        default=None, description="the kernel's boot id: boot-clock times compare within one"
    )
    cgroup_version: CgroupVersion
    pods: list[Pod] = Field(default_factory=list)
    exited_pods: list[Pod] = Field(
        default_factory=list,
        description="pods whose last process exited recently, with their final counters "
        "(read when the cgroup emptied, before the kubelet removed it); repeated in every "
        "snapshot for the retention period, never together with the same pod in ``pods``",
    )
    exited_containers: list[ExitedContainer] = Field(
        default_factory=list,
        description="container runs that ended recently (the exit watcher's), repeated for "
        "the retention period like ``exited_pods``",
    )
    containers: list[Container] = Field(default_factory=list)
    block_devices: dict[str, str] = Field(
        default_factory=dict,
        description='"major:minor" → kernel device name (``vda``, ``nvme0n1``) of every block '
        "device in the snapshot's ``block_io``, from /sys/dev/block",
    )
    errors: list[str] = Field(default_factory=list)
