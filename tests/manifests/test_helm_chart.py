"""The Helm chart, rendered, linted and schema-checked by Helm's own Go SDK (the
helm-python-sdk wheel; no helm binary), validated against the Kubernetes schemas, held to
the security properties of the kustomize overlays, and kept in step with manifests/."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

import tests.manifests.test_kustomize as overlay_checks
from exporter.http.definitions import parse_definitions
from tests.manifests.environment import exporter_settings
from tests.manifests.kustomize import build

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests" / "helm" / "runtime-insights"
NAMESPACE = "runtime-insights"
KUBE_VERSION = "1.30"
Obj = dict[str, Any]

HELM_LABELS = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart")
CUSTOM_KINDS = {"Certificate", "Issuer", "SecurityContextConstraints", "PodMonitor"}
CUSTOM_KINDS |= {"ServiceMonitor"}
"""Kinds of CRDs (cert-manager, OpenShift, prometheus-operator): no Kubernetes schema."""

SWITCHES: dict[str, Obj] = {
    "defaults": {},
    "openmeter": {
        "openmeter": {
            "url": "https://openmeter.cloud",
            "token": "om-secret",
            "interval": 300,
            "eventType": "pod-cpu",
            "source": "cluster-eu-1",
        }
    },
    "openmeter-existing-secret": {
        "openmeter": {"url": "http://openmeter.openmeter:8888", "existingSecret": "om-token"}
    },
    "tls-cert-manager": {"tls": {"source": "cert-manager"}},
    "tls-cert-manager-issuer": {
        "tls": {
            "source": "cert-manager",
            "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        }
    },
    "tls-openshift-scc": {"tls": {"source": "openshift"}, "openshift": {"scc": True}},
    "tls-existing-secret": {"tls": {"source": "secret", "existingSecret": "my-tls"}},
    "no-apiservice": {"apiService": {"enabled": False}},
    "monitors": {
        "monitoring": {
            "podMonitor": {
                "enabled": True,
                "labels": {"release": "kps"},
                "tokenSecret": {"name": "prom-token", "key": "token"},
            },
            "serviceMonitor": {"enabled": True, "interval": "1m"},
            "prometheusServiceAccount": {"name": "prometheus", "namespace": "monitoring"},
        }
    },
    "scheduling": {
        "image": {
            "repository": "registry.example/ri",
            "tag": "0.2.0-rc1",
            "pullPolicy": "Always",
            "pullSecrets": [{"name": "regcred"}],
        },
        "resources": {"exporter": {"requests": {"cpu": "50m", "memory": "96Mi"}}},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "apps"},
        "priorityClassName": "system-node-critical",
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"team": "platform"},
    },
}


def render(values: Obj | None = None, *, namespace: str = NAMESPACE) -> list[Obj]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(
            values or {}, name="runtime-insights", namespace=namespace, is_install=True
        )
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]


API_SERVICES = (
    "v1beta2.custom.metrics.k8s.io",
    "v1beta1.custom.metrics.k8s.io",
    "v1beta1.external.metrics.k8s.io",
)


def _one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _pod_spec(objects: list[Obj]) -> Obj:
    return dict(_one(objects, "DaemonSet")["spec"]["template"]["spec"])


def _container(objects: list[Obj], name: str) -> Obj:
    (found,) = [c for c in _pod_spec(objects)["containers"] if c["name"] == name]
    return dict(found)


def _env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container["env"]}


@pytest.fixture(scope="module", params=sorted(SWITCHES))
def switch(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Obj]]]:
    yield request.param, render(SWITCHES[request.param])


def test_versions_agree_with_the_project() -> None:
    """One version: pyproject's, the chart's, its appVersion and the overlays' image tag."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with helm.Chart.load(CHART) as chart:
        assert chart.version == version
        assert chart.metadata["appVersion"] == version
    (image,) = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())["images"]
    assert image["newTag"] == version
    images = {c["image"] for c in _pod_spec(render())["containers"]}
    assert images == {f"runtime-insights:{version}"}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_helm_lint_finds_nothing_to_warn_about(name: str) -> None:
    report = helm.lint(CHART, SWITCHES[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_every_rendered_object_is_valid_for_kubernetes(switch: tuple[str, list[Obj]]) -> None:
    """Against the published schemas, strictly (no unknown field); CRD kinds have none."""
    _, objects = switch
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"].split("/")[0] in {
                "cert-manager.io",
                "security.openshift.io",
                "monitoring.coreos.com",
            }
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_no_two_objects_share_a_name(switch: tuple[str, list[Obj]]) -> None:
    _, objects = switch
    ids = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(ids) == len(set(ids))


SECURITY_CHECKS: list[Callable[..., None]] = [
    overlay_checks.test_extractor_has_exactly_the_privileges_it_needs,
    overlay_checks.test_host_paths_are_mounted_read_only,
    overlay_checks.test_the_meter_spool_belongs_to_the_exporter,
    overlay_checks.test_openmeter_is_configured_from_optional_objects,
    overlay_checks.test_extractor_arguments_parse_with_the_real_cli,
    overlay_checks.test_exporter_runs_unprivileged,
    overlay_checks.test_exporter_environment_is_valid_settings,
    overlay_checks.test_front_proxy_trust_comes_from_the_cluster,
    overlay_checks.test_only_the_exporter_holds_kubernetes_credentials,
    overlay_checks.test_probes_use_unauthenticated_health_paths,
    overlay_checks.test_every_container_has_requests_and_limits,
    overlay_checks.test_rbac_grants_the_exporter_what_it_calls,
    overlay_checks.test_exporters_can_reach_and_verify_their_peers,
    overlay_checks.test_exporter_role_covers_the_peer_requests,
    overlay_checks.test_reader_role_covers_what_the_middleware_asks,
    overlay_checks.test_collector_role_grants_what_collect_asks_and_nothing_more,
]


@pytest.mark.parametrize("check", SECURITY_CHECKS, ids=lambda c: c.__name__.removeprefix("test_"))
def test_the_chart_keeps_the_overlays_security_properties(
    check: Callable[..., None], switch: tuple[str, list[Obj]]
) -> None:
    """The very checks tests/manifests/test_kustomize.py runs on the kustomize base, on every
    switch's rendering ("base" there is the whole set of objects)."""
    name, objects = switch
    if (
        name == "tls-openshift-scc"
        and check is overlay_checks.test_exporters_can_reach_and_verify_their_peers
    ):
        pytest.skip("peers trust the service CA: checked against manifests/openshift below")
    available = {"base": objects, "pod_spec": _pod_spec(objects)}
    check(**{p: available[p] for p in inspect.signature(check).parameters})


def _normalized(obj: Any) -> Any:
    """Without Helm's own labels and with keyed lists in key order (kustomize and Helm
    order merged lists differently)."""
    if isinstance(obj, dict):
        out = {k: _normalized(v) for k, v in obj.items()}
        if isinstance(out.get("labels"), dict):
            out["labels"] = {k: v for k, v in out["labels"].items() if k not in HELM_LABELS}
        return out
    if isinstance(obj, list):
        items = [_normalized(i) for i in obj]
        for key in ("name", "mountPath"):
            if items and all(isinstance(i, dict) and key in i for i in items):
                return sorted(items, key=lambda i: str(i[key]))
        return items
    return obj


def _by_id(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): _normalized(o) for o in objects}


@pytest.mark.parametrize(
    ("overlay", "values", "chart_only"),
    [
        ("", {}, {("Secret", "runtime-insights-tls")}),
        ("cert-manager", {"tls": {"source": "cert-manager"}}, set()),
        ("openshift", {"tls": {"source": "openshift"}, "openshift": {"scc": True}}, set()),
    ],
    ids=["manifests", "manifests-cert-manager", "manifests-openshift"],
)
def test_the_chart_renders_what_the_overlays_apply(
    overlay: str, values: Obj, chart_only: set[tuple[str, str]]
) -> None:
    """One source of truth in two forms: each overlay's objects, as kustomize applies
    them, equal the chart's with the matching values. The Namespace is the overlays' only
    (Helm installs into one: README says how to label it), the chart's default TLS Secret
    and the APIService's caBundle are its own (it issues the certificate itself)."""
    kustomized = _by_id(build(ROOT / "manifests" / overlay))
    charted = _by_id(render(values))
    namespace = kustomized.pop(("Namespace", NAMESPACE))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert set(charted) - set(kustomized) == chart_only
    assert set(kustomized) - set(charted) == set()
    for api in API_SERVICES:
        api_service = charted[("APIService", api)]
        if overlay == "":
            assert api_service["spec"].pop("caBundle")
    for key, obj in kustomized.items():
        assert charted[key] == obj, key


def test_kubectl_kustomize_agrees_with_the_computed_overlays() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    for overlay in ("", "cert-manager", "openshift"):
        out = subprocess.run(
            ["kubectl", "kustomize", str(ROOT / "manifests" / overlay)],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        applied = [d for d in yaml.safe_load_all(out) if d]
        assert _by_id(applied) == _by_id(build(ROOT / "manifests" / overlay)), overlay


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"tls": {"source": "vault"}}, "/tls/source"),
        ({"tls": {"source": "secret"}}, "existingSecret"),
        ({"openmeter": {"url": "openmeter.cloud"}}, "/openmeter/url"),
        ({"openmeter": {"interval": 0}}, "/openmeter/interval"),
        ({"openmeter": {"tokn": "x"}}, "tokn"),
        (
            {"monitoring": {"serviceMonitor": {"interval": "often"}}},
            "/monitoring/serviceMonitor/interval",
        ),
        (
            {"resources": {"exporter": {"limits": {"memory": "lots"}}}},
            "/resources/exporter/limits/memory",
        ),
        ({"tolerations": [{"operator": "Maybe"}]}, "/tolerations/0/operator"),
        ({"extractor": {"openFiles": 100}}, "/extractor/openFiles"),
    ],
)
def test_a_wrong_value_fails_the_install_naming_it(values: Obj, named: str) -> None:
    with pytest.raises(helm.HelmError) as failure:
        render(values)
    assert named in str(failure.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"openmeter": {"token": "t", "existingSecret": "s"}},
            "openmeter.token and openmeter.existingSecret exclude each other",
        ),
        (
            {"monitoring": {"podMonitor": {"enabled": True}}},
            "monitoring.podMonitor.tokenSecret.name is required",
        ),
    ],
)
def test_contradicting_values_fail_with_their_names(values: Obj, message: str) -> None:
    with pytest.raises(helm.HelmError) as failure:
        render(values)
    assert message in str(failure.value)


def test_openmeter_values_reach_the_exporter() -> None:
    objects = render(SWITCHES["openmeter"])
    exporter = _container(objects, "exporter")
    config = _one(objects, "ConfigMap", "runtime-insights-openmeter")
    url_ref = _env(exporter)["RUNTIME_INSIGHTS_OPENMETER_URL"]["valueFrom"]["configMapKeyRef"]
    assert (url_ref["name"], config["data"][url_ref["key"]]) == (
        config["metadata"]["name"],
        "https://openmeter.cloud",
    )
    settings = exporter_settings(exporter)
    assert settings.meter_interval_seconds == 300
    assert (settings.meter_event_type, settings.meter_source) == ("pod-cpu", "cluster-eu-1")
    secret = _one(objects, "Secret", "runtime-insights-openmeter")
    import base64

    assert base64.b64decode(secret["data"]["token"]) == b"om-secret"
    volume = next(v for v in _pod_spec(objects)["volumes"] if v["name"] == "openmeter-token")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]

    objects = render(SWITCHES["openmeter-existing-secret"])
    volume = next(v for v in _pod_spec(objects)["volumes"] if v["name"] == "openmeter-token")
    assert volume["secret"]["secretName"] == "om-token"
    assert not [
        o for o in objects if o["kind"] == "Secret" and "openmeter" in o["metadata"]["name"]
    ]
    defaults = exporter_settings(_container(render(), "exporter"))
    assert (defaults.meter_interval_seconds, defaults.meter_source) == (60, "kubernetes-api")


def test_tls_sources_issue_the_mounted_secret() -> None:
    def mounted(objects: list[Obj]) -> str:
        volume = next(v for v in _pod_spec(objects)["volumes"] if v["name"] == "tls")
        return str(volume["secret"]["secretName"])

    objects = render(SWITCHES["tls-existing-secret"])
    assert mounted(objects) == "my-tls"
    assert not [o for o in objects if o["kind"] in ("Secret", "Certificate")]
    assert all("caBundle" not in _one(objects, "APIService", a)["spec"] for a in API_SERVICES)

    objects = render(SWITCHES["tls-cert-manager-issuer"])
    certificate = _one(objects, "Certificate")
    assert certificate["spec"]["secretName"] == mounted(objects)
    assert certificate["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}
    assert not [o for o in objects if o["kind"] == "Issuer"]

    assert not [o for o in render(SWITCHES["no-apiservice"]) if o["kind"] == "APIService"]


def test_the_charts_own_certificate_is_valid_for_the_service(tmp_path: Path) -> None:
    """tls.source=helm: a CA and a serving certificate for the Service's DNS name, and the
    same CA in the APIService, checked by the real openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    import base64

    objects = render(namespace="metering")
    secret = _one(objects, "Secret", "runtime-insights-tls")
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    for api in API_SERVICES:
        assert _one(objects, "APIService", api)["spec"]["caBundle"] == secret["data"]["ca.crt"]
    for name in ("runtime-insights.metering.svc", "runtime-insights.metering.svc.cluster.local"):
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", tmp_path / "ca.crt", "-verify_hostname", name,
             tmp_path / "tls.crt"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
    env = _env(_container(objects, "exporter"))
    assert env["RUNTIME_INSIGHTS_PEER_SERVER_NAME"]["value"] == "runtime-insights.metering.svc"


def test_monitors_scrape_metrics_over_verified_tls() -> None:
    objects = render(SWITCHES["monitors"])
    pod_monitor = _one(objects, "PodMonitor")
    assert pod_monitor["metadata"]["labels"]["release"] == "kps"
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["scheme"], endpoint["path"]) == (
        "https",
        "https",
        "/metrics",
    )
    assert endpoint["authorization"]["credentials"] == {"name": "prom-token", "key": "token"}
    assert endpoint["tlsConfig"]["serverName"] == "runtime-insights.runtime-insights.svc"
    assert endpoint["tlsConfig"]["ca"]["secret"] == {
        "name": "runtime-insights-tls",
        "key": "ca.crt",
    }
    labels = _one(objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service_monitor = _one(objects, "ServiceMonitor")
    (endpoint,) = service_monitor["spec"]["endpoints"]
    assert endpoint["interval"] == "1m" and endpoint["port"] == "https"
    service = _one(objects, "Service")
    assert (
        service_monitor["spec"]["selector"]["matchLabels"].items()
        <= service["metadata"]["labels"].items()
    )
    binding = _one(objects, "ClusterRoleBinding", "runtime-insights-prometheus-reader")
    assert binding["roleRef"]["name"] == "runtime-insights-reader"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
    ]
    openshift = render({**SWITCHES["tls-openshift-scc"], **SWITCHES["monitors"]})
    (endpoint,) = _one(openshift, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"]["ca"] == {
        "configMap": {"name": "openshift-service-ca.crt", "key": "service-ca.crt"}
    }


def test_scheduling_and_image_values_reach_the_pod() -> None:
    objects = render(SWITCHES["scheduling"])
    spec = _pod_spec(objects)
    template = _one(objects, "DaemonSet")["spec"]["template"]
    for container in [*spec["containers"], *spec["initContainers"]]:
        assert container["image"] == "registry.example/ri:0.2.0-rc1"
        assert container["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "apps"}
    assert spec["priorityClassName"] == "system-node-critical"
    assert template["metadata"]["annotations"]["example.com/team"] == "platform"
    assert template["metadata"]["labels"]["team"] == "platform"
    resources = _container(objects, "exporter")["resources"]
    assert resources["requests"] == {"cpu": "50m", "memory": "96Mi"}
    assert resources["limits"] == {"cpu": "500m", "memory": "192Mi"}  # defaults kept


def test_metric_definitions_and_the_redis_feed_are_chart_values() -> None:
    """Off by default (nothing rendered, the overlays' objects); set, the exporter reads
    the definitions ConfigMap at the path it is given and publishes to that Redis."""
    default = render()
    assert not [o for o in default if o["kind"] == "ConfigMap"]
    assert exporter_settings(_container(default, "exporter")).redis_host is None
    definitions = {
        "metrics": [
            {
                "name": "java_rss",
                "field": "container.memory.workingSetBytes",
                "aggregation": "sum",
                "fingerprintKind": "Java",
            }
        ]
    }
    objects = render({"metricDefinitions": definitions, "redis": {"host": "redis.telemd"}})
    configmap = _one(objects, "ConfigMap", "runtime-insights-metrics")
    [metric] = parse_definitions(configmap["data"]["metrics.yaml"])
    assert (metric.name, metric.kinds) == ("java_rss", frozenset({"Java"}))
    spec = _pod_spec(objects)
    exporter = _container(objects, "exporter")
    settings = exporter_settings(exporter)
    assert (settings.redis_host, settings.redis_port) == ("redis.telemd", 6379)
    assert settings.metric_definitions_file is not None
    mount = next(m for m in exporter["volumeMounts"] if m["name"] == "metric-definitions")
    assert settings.metric_definitions_file == mount["mountPath"] + "/metrics.yaml"
    volume = next(v for v in spec["volumes"] if v["name"] == "metric-definitions")
    assert volume["configMap"]["name"] == "runtime-insights-metrics"


def test_the_open_files_value_reaches_the_extractor() -> None:
    """The descriptor limit the extractor raises itself to (README, --open-files)."""
    (daemonset,) = [
        o for o in render({"extractor": {"openFiles": 65536}}) if o["kind"] == "DaemonSet"
    ]
    (extractor,) = [
        c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "extractor"
    ]
    assert "--open-files=65536" in extractor["args"]
