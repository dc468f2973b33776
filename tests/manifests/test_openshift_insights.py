"""manifests/openshift-insights puts the DaemonSet where the Insights Operator looks for
insights-runtime-extractor, so the operator gathers from it unchanged.

Each fact the operator relies on is written here with its source: openshift/insights-
operator at commit 8494b69b8075 (2026-08-06; docs/insights-runtime-extractor.md says the
same in our words):

- GATHERER: pkg/gatherers/workloads/gather_workloads_runtime_infos.go — pods listed in
  the operator's own namespace (``POD_NAMESPACE``) with ``app.kubernetes.io/name=
  insights-runtime-extractor`` and phase Running; ``POST https://<podIP>:8443/
  gather_runtime_info`` (GET on release-4.18 to 4.21) with ``Authorization: Bearer`` of
  its service account; TLS verified against the service CA with ServerName
  ``exporter.openshift-insights.svc.cluster.local``;
- SERVICE: manifests/10-insights-runtime-extractor-service.yaml — Service ``exporter``
  (headless) selecting ``app.kubernetes.io/name: insights-runtime-extractor``, targetPort
  ``https``, annotated ``service.beta.openshift.io/serving-cert-secret-name:
  insights-runtime-extractor-tls``;
- PROXY: manifests/10-insights-runtime-extractor-proxy-configmap.yaml — the one caller let
  through is ``system:serviceaccount:openshift-insights:operator``;
- JOB: pkg/controller/periodic/job.go — gathering jobs run as service account ``operator``;
- NAMESPACE: manifests/02-namespace.yaml — ``openshift-insights``, Pod Security
  ``privileged``; POLICY: manifests/11-network-policy.yaml — default deny in and out,
  ``allow-runtime-extractor`` opens egress and TCP 8443 for the labelled pods;
- CONTROLLER: pkg/controller/runtimeextractor/resources/daemonset.go and informer.go —
  the operator reconciles, and with ``disableRuntimeExtractor`` deletes, the DaemonSet
  named ``insights-runtime-extractor`` in that namespace (and only it).

The overlay is rendered by tests/manifests/kustomize.py (which agrees with kustomize's
own library on every overlay of manifests/).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tests.manifests.test_kustomize as overlay_checks
from exporter.kube.selectors import parse_selector
from exporter.security.auth import request_attributes
from tests.manifests.environment import exporter_settings
from tests.manifests.kustomize import build
from tests.support.paths import REPO_ROOT

Obj = dict[str, Any]
OVERLAY = REPO_ROOT / "manifests" / "openshift-insights"

# GATHERER, NAMESPACE
OPERATOR_NAMESPACE = "openshift-insights"
OPERATOR_SELECTOR = "app.kubernetes.io/name=insights-runtime-extractor"
OPERATOR_PORT = 8443
OPERATOR_PATH = "/gather_runtime_info"
OPERATOR_METHODS = ("POST", "GET")
OPERATOR_SERVER_NAME = "exporter.openshift-insights.svc.cluster.local"
# SERVICE
OPERATOR_SERVICE = "exporter"
OPERATOR_SERVICE_SELECTOR = {"app.kubernetes.io/name": "insights-runtime-extractor"}
OPERATOR_TARGET_PORT = "https"
SERVING_SECRET = "insights-runtime-extractor-tls"
# PROXY, JOB
OPERATOR_USER = "system:serviceaccount:openshift-insights:operator"
# CONTROLLER
OPERATOR_DAEMONSET = "insights-runtime-extractor"


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return build(OVERLAY)


@pytest.fixture(scope="module")
def pod_spec(objects: list[Obj]) -> Obj:
    return dict(_one(objects, "DaemonSet")["spec"]["template"]["spec"])


def _one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _exporter(pod_spec: Obj) -> Obj:
    (exporter,) = [c for c in pod_spec["containers"] if c["name"] == "exporter"]
    return dict(exporter)


def test_the_operator_finds_the_pods_in_its_namespace_by_its_label(objects: list[Obj]) -> None:
    """GATHERER: listed in POD_NAMESPACE by the label ``app.kubernetes.io/name``."""
    daemonset = _one(objects, "DaemonSet")
    assert daemonset["metadata"]["namespace"] == OPERATOR_NAMESPACE
    selector = parse_selector(OPERATOR_SELECTOR)
    assert selector.matches(daemonset["spec"]["template"]["metadata"]["labels"])
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= (
        daemonset["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_daemonset_is_not_the_one_the_operator_reconciles(objects: list[Obj]) -> None:
    """CONTROLLER: a DaemonSet of that name would be overwritten (or deleted when
    disableRuntimeExtractor is set); ours has its own."""
    assert _one(objects, "DaemonSet")["metadata"]["name"] != OPERATOR_DAEMONSET


def test_the_operator_reaches_the_exporter_on_8443_over_tls(pod_spec: Obj) -> None:
    """GATHERER: ``https://<podIP>:8443``; SERVICE: targetPort ``https``."""
    exporter = _exporter(pod_spec)
    settings = exporter_settings(exporter, OPERATOR_NAMESPACE)
    assert settings.port == OPERATOR_PORT
    assert settings.tls_cert_file and settings.tls_key_file
    ports = {p["name"]: p["containerPort"] for p in exporter["ports"]}
    assert ports[OPERATOR_TARGET_PORT] == OPERATOR_PORT
    assert pod_spec.get("hostNetwork") is not True  # the pod IP is the pod's own


def test_the_serving_certificate_is_the_one_the_operator_verifies(pod_spec: Obj) -> None:
    """SERVICE: the service CA writes ``tls.crt``/``tls.key`` into the Secret named by the
    operator's Service ``exporter``, for ``exporter.openshift-insights.svc`` and
    ``…svc.cluster.local`` — the GATHERER's ServerName."""
    exporter = _exporter(pod_spec)
    settings = exporter_settings(exporter, OPERATOR_NAMESPACE)
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    for path, key in ((settings.tls_cert_file, "tls.crt"), (settings.tls_key_file, "tls.key")):
        assert path is not None and Path(path).name == key
        volume = volumes[mounts[str(Path(path).parent)]]
        assert volume["secret"]["secretName"] == SERVING_SECRET
    assert f"{OPERATOR_SERVICE}.{OPERATOR_NAMESPACE}.svc.cluster.local" == OPERATOR_SERVER_NAME


def test_the_operators_service_selects_the_pods(objects: list[Obj]) -> None:
    """SERVICE: selector and target port; the Service is OpenShift's, not ours to apply."""
    template = _one(objects, "DaemonSet")["spec"]["template"]
    assert OPERATOR_SERVICE_SELECTOR.items() <= template["metadata"]["labels"].items()
    assert not [o for o in objects if o["kind"] == "Service"]


def test_nothing_of_openshift_is_created_or_deleted_by_the_overlay(objects: list[Obj]) -> None:
    """NAMESPACE, SERVICE, GATHERER: the namespace, the Service and the operator's service
    account belong to OpenShift; `oc delete -k` of the overlay must leave them."""
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Namespace", OPERATOR_NAMESPACE) not in kinds
    assert not [o for o in objects if o["kind"] == "Namespace"]
    assert ("ServiceAccount", "operator") not in kinds
    assert ("Service", OPERATOR_SERVICE) not in kinds
    namespaced = [o for o in objects if "namespace" in o["metadata"]]
    assert {o["metadata"]["namespace"] for o in namespaced} == {OPERATOR_NAMESPACE, "kube-system"}
    (elsewhere,) = [o for o in namespaced if o["metadata"]["namespace"] == "kube-system"]
    assert elsewhere["kind"] == "RoleBinding"  # the front-proxy reader, as in manifests/


def test_the_operators_service_account_may_call_the_route(objects: list[Obj]) -> None:
    """PROXY, JOB: the operator and its gathering jobs call as ``operator``; the exporter
    asks RBAC exactly what its middleware derives for POST (and GET) of the path."""
    namespace, name = OPERATOR_USER.removeprefix("system:serviceaccount:").split(":")
    bindings = [
        b
        for b in objects
        if b["kind"] == "ClusterRoleBinding"
        and {"kind": "ServiceAccount", "name": name, "namespace": namespace} in b["subjects"]
    ]
    (binding,) = bindings
    role = _one(objects, "ClusterRole", binding["roleRef"]["name"])
    for method in OPERATOR_METHODS:
        attrs = request_attributes(method, OPERATOR_PATH)["nonResourceAttributes"]
        assert any(
            attrs["path"] in rule.get("nonResourceURLs", ()) and attrs["verb"] in rule["verbs"]
            for rule in role["rules"]
        ), method
    assert role["rules"] == [{"nonResourceURLs": [OPERATOR_PATH], "verbs": ["get", "post"]}], (
        "the operator gets this route and nothing else"
    )


def test_the_exporters_own_account_can_review_the_operators_token(objects: list[Obj]) -> None:
    """The exporter checks the operator's token itself (TokenReview, SubjectAccessReview):
    its account, moved into the namespace, keeps those rights and the SCC."""
    account = _one(objects, "ServiceAccount")["metadata"]
    assert account["namespace"] == OPERATOR_NAMESPACE
    daemonset = _one(objects, "DaemonSet")
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": OPERATOR_NAMESPACE}
    for kind, name in (
        ("ClusterRoleBinding", "runtime-insights"),
        ("RoleBinding", "runtime-insights-scc"),
        ("RoleBinding", "runtime-insights-auth-reader"),
    ):
        assert _one(objects, kind, name)["subjects"] == [subject], name
    assert _one(objects, "RoleBinding", "runtime-insights-scc")["metadata"]["namespace"] == (
        OPERATOR_NAMESPACE
    )


def test_the_namespaces_network_policies_let_the_operator_in(objects: list[Obj]) -> None:
    """POLICY: default deny; ``allow-runtime-extractor`` selects the labelled pods (egress
    to the API server, TCP 8443 in from the operator). Ours selects the same pods on the
    same port (the exporter authenticates every caller, as in manifests/)."""
    labels = _one(objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert parse_selector(OPERATOR_SELECTOR).matches(labels)
    policy = _one(objects, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {OPERATOR_PORT}


def test_peers_find_each_other_under_the_new_label_and_name(objects: list[Obj]) -> None:
    """Exporter-to-exporter calls: the pods' label, the operator's certificate name."""
    pod_spec = _one(objects, "DaemonSet")["spec"]["template"]
    settings = exporter_settings(_exporter(pod_spec["spec"]), OPERATOR_NAMESPACE)
    assert parse_selector(settings.peer_selector).matches(pod_spec["metadata"]["labels"])
    assert settings.peer_server_name == f"{OPERATOR_SERVICE}.{OPERATOR_NAMESPACE}.svc"


def test_no_custom_metrics_api_service(objects: list[Obj]) -> None:
    """The aggregator would verify a certificate for a Service of ours; the exporter
    serves only the operator's (README says so)."""
    assert not [o for o in objects if o["kind"] == "APIService"]


def test_the_replaced_tools_priority(pod_spec: Obj) -> None:
    assert pod_spec["priorityClassName"] == "openshift-user-critical"


CHECKS: list[Callable[..., None]] = [
    overlay_checks.test_extractor_has_exactly_the_privileges_it_needs,
    overlay_checks.test_host_paths_are_mounted_read_only,
    overlay_checks.test_the_meter_spool_belongs_to_the_exporter,
    overlay_checks.test_openmeter_is_configured_from_optional_objects,
    overlay_checks.test_extractor_arguments_parse_with_the_real_cli,
    overlay_checks.test_exporter_runs_unprivileged,
    overlay_checks.test_only_the_exporter_holds_kubernetes_credentials,
    overlay_checks.test_probes_use_unauthenticated_health_paths,
    overlay_checks.test_every_container_has_requests_and_limits,
    overlay_checks.test_rbac_grants_the_exporter_what_it_calls,
    overlay_checks.test_reader_role_covers_what_the_middleware_asks,
]


def test_the_pods_run_under_runtime_insights_own_scc(objects: list[Obj], pod_spec: Obj) -> None:
    """manifests/openshift's SCC (not the replaced tool's privileged one), usable by the
    DaemonSet's account in this namespace."""
    scc = _one(objects, "SecurityContextConstraints")
    template = _one(objects, "DaemonSet")["spec"]["template"]
    assert (
        template["metadata"]["annotations"]["openshift.io/required-scc"]
        == (scc["metadata"]["name"])
    )
    assert scc["allowPrivilegedContainer"] is False
    added = {
        cap
        for c in [*pod_spec["containers"], *pod_spec["initContainers"]]
        for cap in c["securityContext"]["capabilities"].get("add", [])
    }
    assert added <= set(scc["allowedCapabilities"])
    assert {next(k for k in v if k != "name") for v in pod_spec["volumes"]} <= set(scc["volumes"])
    role = _one(objects, "Role", "runtime-insights-scc")
    assert role["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert role["rules"][0]["resourceNames"] == [scc["metadata"]["name"]]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("test_"))
def test_the_overlay_keeps_the_base_security_properties(
    check: Callable[..., None], objects: list[Obj], pod_spec: Obj
) -> None:
    """The checks tests/manifests/test_kustomize.py runs on manifests/, on this overlay."""
    available = {"base": objects, "pod_spec": pod_spec}
    check(**{p: available[p] for p in inspect.signature(check).parameters})
