"""What the meter remembers of a pod's metadata: enough to bill it after it is gone.

The API server forgets a pod soon after it ends, the reflector keeps it ten minutes in
memory, and a restarted exporter knows neither; a window may close after all three. So
every poll copies what billing needs (names, labels, the annotations the collectors read,
the owner, requests and limits) from ``PodMeta`` into the open window, which the spool
keeps on disk. Requests and limits are in the kernel's units: millicores and bytes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from exporter.kube.podmeta import PodMeta

ANNOTATION_PREFIXES = ("openmeter.io/", "data.openmeter.io/")


class Resources(BaseModel):
    """Requests and limits of one container, or of a pod (its containers' sums)."""

    model_config = ConfigDict(extra="forbid")

    cpu_request_mc: int | None = None
    cpu_limit_mc: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None
    gpu_request: int | None = None
    gpu_limit: int | None = None


class PodFacts(BaseModel):
    """A pod's metadata as billing needs it."""

    model_config = ConfigDict(extra="forbid")

    namespace: str
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_kind: str | None = None
    owner_name: str | None = None
    resources: Resources = Field(default_factory=Resources)
    containers: dict[str, Resources] = Field(default_factory=dict, description="by name")
    names: dict[str, str] = Field(default_factory=dict, description="container id → name")


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def facts_of(meta: PodMeta) -> PodFacts:
    """The billing view of ``meta``. The pod's requests are those of the containers that
    run for its life (regular and sidecar), as the scheduler reserves them."""
    containers: dict[str, Resources] = {}
    for c in meta.containers:
        containers[c.name] = Resources(
            cpu_request_mc=c.cpu_request_millicores,
            cpu_limit_mc=c.cpu_limit_millicores,
            memory_request_bytes=c.memory_request_bytes,
            memory_limit_bytes=c.memory_limit_bytes,
            gpu_request=c.gpu_request,
            gpu_limit=c.gpu_limit,
        )
    running = [containers[c.name] for c in meta.containers if c.kind in ("regular", "sidecar")]
    pod = Resources(
        **{key: _sum([getattr(r, key) for r in running]) for key in Resources.model_fields}
    )
    return PodFacts(
        namespace=meta.namespace,
        name=meta.name,
        labels=dict(meta.labels),
        annotations={
            k: v for k, v in meta.annotations.items() if k.startswith(ANNOTATION_PREFIXES)
        },
        owner_kind=meta.owner.kind if meta.owner else None,
        owner_name=meta.owner.name if meta.owner else None,
        resources=pod,
        containers=containers,
        names={c.container_id: c.name for c in meta.containers if c.container_id},
    )
