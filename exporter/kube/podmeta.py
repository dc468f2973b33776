"""Pod metadata as the exporter needs it, distilled from the API server's Pod objects.

The reflector fills these; aggregation, the HTTP API and metering read them. Keeping a
small model of our own (instead of passing kubernetes client objects around) keeps the
cache cheap and makes every consumer testable without the API server.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ContainerKind = Literal["init", "regular", "sidecar", "ephemeral"]


class Owner(BaseModel):
    """The controller that owns a pod, resolved through a ReplicaSet to its Deployment."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str


class ContainerStatus(BaseModel):
    """One entry of a pod's container statuses (init, sidecar and ephemeral included)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: ContainerKind = "regular"
    container_id: str | None = Field(
        default=None, description="bare ID, without the runtime:// prefix"
    )
    runtime: str | None = Field(default=None, description="containerID prefix: containerd, cri-o")
    image: str | None = None
    image_id: str | None = None
    restart_count: int = 0
    state: Literal["waiting", "running", "terminated"] | None = None
    started_at: float | None = Field(default=None, description="unix seconds")
    finished_at: float | None = Field(default=None, description="unix seconds")
    exit_code: int | None = None
    cpu_request_millicores: int | None = None
    cpu_limit_millicores: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None
    spec_image: str | None = Field(default=None, description="the image as the spec names it")
    port: int | None = Field(default=None, description="the spec's first containerPort")
    requests: dict[str, str] = Field(
        default_factory=dict, description="spec resources.requests as the API writes them"
    )
    limits: dict[str, str] = Field(
        default_factory=dict, description="spec resources.limits as the API writes them"
    )
    gpu_request: int | None = Field(
        default=None, description="devices of extended resources named */gpu (nvidia.com/gpu)"
    )
    gpu_limit: int | None = None


class PodMeta(BaseModel):
    """What the API server knows of a pod on this node."""

    model_config = ConfigDict(extra="forbid")

    uid: str
    cgroup_uid: str = Field(
        description="the UID the kubelet used for cgroups: the config hash for static pods "
        "(kubernetes.io/config.mirror), else the same as uid"
    )
    namespace: str
    name: str
    node: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner: Owner | None = None
    qos: Literal["guaranteed", "burstable", "besteffort"] | None = None
    phase: str | None = None
    host_ip: str | None = None
    pod_ip: str | None = None
    start_time: float | None = Field(default=None, description="unix seconds")
    resource_version: str | None = None
    deleting: bool = Field(default=False, description="metadata.deletionTimestamp is set")
    containers: list[ContainerStatus] = Field(default_factory=list)
    overhead_cpu_millicores: int | None = Field(
        default=None, description="spec.overhead of the pod's RuntimeClass, added to requests"
    )
    overhead_memory_bytes: int | None = None
    scheduler: str | None = Field(default=None, description="spec.schedulerName")
    priority: int | None = Field(default=None, description="spec.priority")
