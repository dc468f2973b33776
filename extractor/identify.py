"""Names a container from its runtime's own state on the node, without the API server.

The cgroup path gives a container id and a pod UID but no names. The runtimes keep each
container's OCI spec (``config.json``) on the node, and the CRI layer of both containerd
and CRI-O writes the pod's namespace, name and UID, the container's name and whether it
is a sandbox into that spec's annotations. Reading those files needs no credentials and
works when the API server is down or the node is not part of a cluster at all.

The files are written by the runtime, not by the container, but they are still treated
as untrusted input: bounded reads, regular files only, any malformed content is "no
answer" (``None``), never an exception.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import orjson

from extractor.hostpaths import HostPaths

MAX_CONFIG_BYTES = 4 << 20
"""A real config.json is a few KiB; 4 MiB leaves room for big annotation sets."""

CACHE_SIZE = 4096
"""Bundles never change, so answers are cached; the bound keeps churn from growing it."""
RETRY_SECONDS = 60.0
"""A container no state root describes (not a CRI container, or a root not mounted) is
looked up again this long after: a pass would otherwise search every root for it."""

ContainerType = Literal["sandbox", "container"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CRIO_BUNDLE = ("overlay-containers", "{id}", "userdata", "config.json")


@dataclass(frozen=True)
class _Keys:
    """The annotation keys under which one runtime records a container's names."""

    container_type: str
    sandbox_id: str
    namespace: str
    pod_name: str
    pod_uid: str
    container: str
    image: str


# containerd's CRI plugin (pkg/cri/annotations/annotations.go in containerd/containerd).
_CONTAINERD = _Keys(
    container_type="io.kubernetes.cri.container-type",
    sandbox_id="io.kubernetes.cri.sandbox-id",
    namespace="io.kubernetes.cri.sandbox-namespace",
    pod_name="io.kubernetes.cri.sandbox-name",
    pod_uid="io.kubernetes.cri.sandbox-uid",
    container="io.kubernetes.cri.container-name",
    image="io.kubernetes.cri.image-name",
)
# CRI-O (pkg/annotations in cri-o/cri-o; the pod keys are the kubelet's CRI labels,
# which CRI-O copies into the spec's annotations).
_CRIO = _Keys(
    container_type="io.kubernetes.cri-o.ContainerType",
    sandbox_id="io.kubernetes.cri-o.SandboxID",
    namespace="io.kubernetes.pod.namespace",
    pod_name="io.kubernetes.pod.name",
    pod_uid="io.kubernetes.pod.uid",
    container="io.kubernetes.container.name",
    image="io.kubernetes.cri-o.ImageName",
)


@dataclass(frozen=True)
class ContainerLabels:
    """What the runtime's state says about one container; ``None`` means 'not recorded'."""

    runtime: str
    namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    container_name: str | None = None
    container_type: ContainerType | None = None
    sandbox_id: str | None = None
    image: str | None = None
    runtime_namespace: str | None = None
    """containerd's own namespace (``k8s.io``, ``moby``, ``default``…); None for CRI-O."""

    @property
    def is_sandbox(self) -> bool:
        return self.container_type == "sandbox"


def read_bounded(path: str, limit: int = MAX_CONFIG_BYTES) -> bytes | None:
    """Bytes of a regular file if it holds at most ``limit`` bytes, else None.

    O_NONBLOCK keeps a FIFO planted at the path (bundles hold one, ``log``) from
    blocking the open; the fstat check then refuses everything but regular files.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_annotations(path: str) -> dict[str, str] | None:
    """The string annotations of an OCI spec file, or None if it is unreadable or malformed."""
    data = read_bounded(path)
    if data is None:
        return None
    try:
        spec = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(spec, dict):
        return None
    annotations = spec.get("annotations", {})
    if not isinstance(annotations, dict):
        return None
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def _text(annotations: dict[str, str], key: str) -> str | None:
    value = annotations.get(key, "").strip()
    return value or None


def _container_type(value: str | None) -> ContainerType | None:
    if value == "sandbox":
        return "sandbox"
    if value == "container":
        return "container"
    return None


def _labels(
    runtime: str, keys: _Keys, annotations: dict[str, str], runtime_namespace: str | None = None
) -> ContainerLabels:
    return ContainerLabels(
        runtime=runtime,
        namespace=_text(annotations, keys.namespace),
        pod_name=_text(annotations, keys.pod_name),
        pod_uid=_text(annotations, keys.pod_uid),
        container_name=_text(annotations, keys.container),
        container_type=_container_type(_text(annotations, keys.container_type)),
        sandbox_id=_text(annotations, keys.sandbox_id),
        image=_text(annotations, keys.image),
        runtime_namespace=runtime_namespace,
    )


def containerd_labels(annotations: dict[str, str], runtime_namespace: str) -> ContainerLabels:
    """Labels from containerd CRI annotations (none at all for non-CRI containers)."""
    return _labels("containerd", _CONTAINERD, annotations, runtime_namespace)


def crio_labels(annotations: dict[str, str]) -> ContainerLabels:
    """Labels from CRI-O annotations."""
    return _labels("crio", _CRIO, annotations)


class RuntimeState:
    """Looks containers up in every configured containerd and CRI-O state root."""

    def __init__(
        self,
        paths: HostPaths,
        cache_size: int = CACHE_SIZE,
        *,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = paths
        self._cache: OrderedDict[str, ContainerLabels] = OrderedDict()
        self._cache_size = cache_size
        self._missing: OrderedDict[str, float] = OrderedDict()
        self._retry_seconds = retry_seconds
        self._clock = clock

    def lookup(self, container_id: str) -> ContainerLabels | None:
        """Labels of ``container_id``, or None when no runtime state describes it.

        An app container missing pod fields (older runtimes wrote them on the sandbox
        only) inherits them from its sandbox's bundle.
        """
        cached = self._cache.get(container_id)
        if cached is not None:
            self._cache.move_to_end(container_id)
            return cached
        missed = self._missing.get(container_id)
        now = self._clock()
        if missed is not None and now - missed < self._retry_seconds:
            return None
        labels = self._read(container_id)
        if labels is None:
            self._missing[container_id] = now
            self._missing.move_to_end(container_id)
            if len(self._missing) > self._cache_size:
                self._missing.popitem(last=False)
            return None
        self._missing.pop(container_id, None)
        if not labels.is_sandbox and labels.sandbox_id and None in _pod_fields(labels):
            sandbox = self._read(labels.sandbox_id)
            if sandbox is not None and sandbox.runtime == labels.runtime:
                labels = _inherit_pod(labels, sandbox)
        self._cache[container_id] = labels
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return labels

    def _read(self, container_id: str) -> ContainerLabels | None:
        if not _ID.fullmatch(container_id):
            return None
        for root in self._paths.containerd_state:
            for namespace in _subdirs(root):
                annotations = read_annotations(
                    os.path.join(root, namespace, container_id, "config.json")
                )
                if annotations is not None:
                    return containerd_labels(annotations, namespace)
        for root in self._paths.crio_state:
            bundle = os.path.join(root, *(p.format(id=container_id) for p in _CRIO_BUNDLE))
            annotations = read_annotations(bundle)
            if annotations is not None:
                return crio_labels(annotations)
        return None


def _subdirs(root: str) -> list[str]:
    """containerd namespaces under a task state root, in a stable order."""
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _pod_fields(labels: ContainerLabels) -> tuple[str | None, str | None, str | None]:
    return (labels.namespace, labels.pod_name, labels.pod_uid)


def _inherit_pod(labels: ContainerLabels, sandbox: ContainerLabels) -> ContainerLabels:
    return replace(
        labels,
        namespace=labels.namespace or sandbox.namespace,
        pod_name=labels.pod_name or sandbox.pod_name,
        pod_uid=labels.pod_uid or sandbox.pod_uid,
    )
