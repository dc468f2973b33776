"""Who is billed, and as what: the two collectors' conventions, and choosing the pods.

Users of OpenMeter's Kubernetes collector (``METER_MODE=collector``, the default) and of
its Pod Runtime Watcher (``watcher``) switch without touching a meter:

* collector: every selected pod; type ``kube-pod-exec-time`` (configurable), subject the
  annotation ``openmeter.io/subject`` else the pod name, every annotation
  ``data.openmeter.io/KEY`` copied to ``data.KEY``;
* watcher: only pods labelled ``k8s.openmeter.cloud/monitor``, whose value is the event
  type; subject the label ``k8s.openmeter.cloud/subject`` else the pod name; every label
  ``k8s.openmeter.cloud/data-KEY`` copied to ``data.KEY``.

On top of either: a namespace list, a label selector and an opt-in label choose the pods.
A pod's identity (billed or not, subject, type, copied data) is decided once, when its
first window closes with its metadata known, and kept for its life, so a pod never moves
between subjects. Without metadata (the API server away) a window is held open for a
while; then the pod is billed under its runtime names, unless a rule needs its labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.kube.selectors import Selector
from exporter.meter.facts import PodFacts

Mode = Literal["collector", "watcher"]
Per = Literal["pod", "container"]

MONITOR_LABEL = "k8s.openmeter.cloud/monitor"
SUBJECT_LABEL = "k8s.openmeter.cloud/subject"
DATA_LABEL_PREFIX = "k8s.openmeter.cloud/data-"
SUBJECT_ANNOTATION = "openmeter.io/subject"
DATA_ANNOTATION_PREFIX = "data.openmeter.io/"
WATCHER_FALLBACK_TYPE = "unknown"
"""The watcher's own type for a monitor label without a value."""


@dataclass(frozen=True)
class Billing:
    """What is billed and how events look (plain values; the wiring fills them in)."""

    mode: Mode = "collector"
    source: str = "kubernetes-api"
    event_type: str = "kube-pod-exec-time"
    namespaces: frozenset[str] = field(default_factory=frozenset)
    """Empty: every namespace."""
    selector: Selector = field(default_factory=Selector)
    opt_in_label: str | None = None
    per: Per = "pod"
    metadata_wait_seconds: float = 300.0

    @property
    def needs_labels(self) -> bool:
        return (
            bool(self.selector.requirements)
            or self.opt_in_label is not None
            or (self.mode == "watcher")
        )


class Identity(BaseModel):
    """A pod's billing identity, fixed when first decided."""

    model_config = ConfigDict(extra="forbid")

    billed: bool
    reason: str | None = Field(default=None, description="why it is not billed")
    subject: str = ""
    event_type: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


def _copied(pairs: dict[str, str], prefix: str) -> dict[str, str]:
    return {
        k.removeprefix(prefix): v for k, v in pairs.items() if k.startswith(prefix) and k != prefix
    }


def decide(
    billing: Billing,
    uid: str,
    facts: PodFacts | None,
    runtime_namespace: str | None,
    runtime_name: str | None,
    node: str,
) -> Identity:
    """The identity of a pod from its metadata (``facts``), or from the runtime's names
    when the API never told us about it."""
    namespace = facts.namespace if facts is not None else runtime_namespace
    name = facts.name if facts is not None else runtime_name
    if billing.namespaces and namespace not in billing.namespaces:
        return Identity(billed=False, reason=f"namespace {namespace} not metered")
    if facts is None:
        if billing.needs_labels:
            return Identity(billed=False, reason="no pod metadata to match labels against")
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
    else:
        labels, annotations = facts.labels, facts.annotations
    if not billing.selector.matches(labels):
        return Identity(billed=False, reason="labels do not match the selector")
    if billing.opt_in_label is not None and billing.opt_in_label not in labels:
        return Identity(billed=False, reason=f"no label {billing.opt_in_label}")
    if billing.mode == "watcher":
        if MONITOR_LABEL not in labels:
            return Identity(billed=False, reason=f"no label {MONITOR_LABEL}")
        event_type = labels[MONITOR_LABEL] or WATCHER_FALLBACK_TYPE
        subject = labels.get(SUBJECT_LABEL) or name or uid
        attributes = _copied(labels, DATA_LABEL_PREFIX)
    else:
        event_type = billing.event_type
        subject = annotations.get(SUBJECT_ANNOTATION) or name or uid
        attributes = _copied(annotations, DATA_ANNOTATION_PREFIX)
    # our own fields win over copied ones, as the collector's mapping does
    if namespace:
        attributes["pod_namespace"] = namespace
    if name:
        attributes["pod_name"] = name
    attributes["pod_uid"] = uid
    attributes["node_name"] = node
    if facts is not None and facts.owner_kind and facts.owner_name:
        attributes["owner_kind"] = facts.owner_kind
        attributes["owner_name"] = facts.owner_name
    return Identity.model_construct(  # every value a str built above
        billed=True, reason=None, subject=subject, event_type=event_type, attributes=attributes
    )
