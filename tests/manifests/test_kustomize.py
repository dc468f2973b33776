"""The deployment manifests: parseable, complete, and as unprivileged as the job allows.

Where the truth lives in code it is read from there: environment variables must be real
exporter settings, extractor arguments must parse with the real CLI, probe paths must be
the ones the auth middleware leaves open, reader verbs must be what it asks RBAC for.
No kustomize binary is needed: kustomization references are resolved here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cluster.collect import EXPORTER_PATH, LINUX_NODES, NODES_ROLE, SERVICE_NAME
from exporter.kube.selectors import parse_selector
from exporter.security.auth import PUBLIC_PATHS, request_attributes
from exporter.security.front_proxy import CONFIGMAP_NAMESPACE, READER_ROLE
from exporter.settings import Settings
from runtime_insights.cli import build_parser
from tests.manifests.environment import exporter_settings
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
MANIFESTS = ROOT / "manifests"
NAMESPACE = "runtime-insights"
Obj = dict[str, Any]


def _docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _resources(kustomize_dir: Path) -> list[Obj]:
    """Every object a kustomization pulls in, following directory references."""
    kustomization = _docs(kustomize_dir / "kustomization.yaml")[0]
    objects: list[Obj] = []
    for ref in kustomization.get("resources", []):
        target = (kustomize_dir / ref).resolve()
        assert target.exists(), f"{kustomize_dir}: resource {ref} does not exist"
        objects += _resources(target) if target.is_dir() else _docs(target)
    return objects


def _url_covers(rule_url: str, path: str) -> bool:
    """RBAC nonResourceURLs: exact, or a prefix when the rule ends in '*'."""
    return path == rule_url or (rule_url.endswith("*") and path.startswith(rule_url[:-1]))


def _one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return _resources(MANIFESTS)


@pytest.fixture(scope="module")
def pod_spec(base: list[Obj]) -> Obj:
    return dict(_one(base, "DaemonSet")["spec"]["template"]["spec"])


def _container(pod_spec: Obj, name: str) -> Obj:
    (found,) = [c for c in pod_spec["containers"] if c["name"] == name]
    return dict(found)


def test_every_yaml_file_parses_and_every_object_is_typed() -> None:
    # the Helm chart's files are templates: tests/manifests/test_helm_chart.py renders them
    files = sorted(p for p in MANIFESTS.rglob("*.yaml") if "helm" not in p.parts)
    assert len(files) >= 10
    for path in files:
        for doc in _docs(path):
            assert doc.get("apiVersion") and doc.get("kind"), path


@pytest.mark.parametrize("overlay", ["", "openshift", "cert-manager"])
def test_kustomizations_resolve_and_patch_existing_objects(overlay: str) -> None:
    directory = MANIFESTS / overlay
    objects = _resources(directory)
    kustomization = _docs(directory / "kustomization.yaml")[0]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        _one(objects, target["kind"], target["name"])
        body = yaml.safe_load(patch["patch"])
        assert (body["kind"], body["metadata"]["name"]) == (target["kind"], target["name"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("overlay", ["", "openshift", "cert-manager"])
def test_kubectl_kustomize_renders_the_same_objects(overlay: str) -> None:
    """Where kubectl exists, its kustomize agrees (it also rejects cycles and bad patches)."""
    directory = MANIFESTS / overlay
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    objects = [d for d in yaml.safe_load_all(rendered) if d is not None]

    def ids(found: list[Obj]) -> list[tuple[str, str | None, str]]:
        return sorted(
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in found
        )

    # namespaces included: a kustomization `namespace:` would move the kube-system binding
    assert ids(objects) == ids(_resources(directory))
    kustomization = _docs(directory / "kustomization.yaml")[0]
    for patch in kustomization.get("patches", []):
        wanted = yaml.safe_load(patch["patch"])
        target = _one(objects, wanted["kind"], wanted["metadata"]["name"])
        template = wanted.get("spec", {}).get("template", wanted)
        got = target.get("spec", {}).get("template", target) if "spec" in wanted else target
        assert template["metadata"]["annotations"].items() <= got["metadata"]["annotations"].items()


def test_namespaced_objects_live_in_the_namespace(base: list[Obj]) -> None:
    """All but the binding to the Role kube-apiserver keeps in kube-system."""
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "APIService"}
    _one(base, "Namespace", NAMESPACE)
    elsewhere = [
        (o["kind"], o["metadata"]["namespace"], o["roleRef"]["name"])
        for o in base
        if o["kind"] not in cluster_scoped and o["metadata"].get("namespace") != NAMESPACE
    ]
    assert elsewhere == [("RoleBinding", CONFIGMAP_NAMESPACE, READER_ROLE)]


def test_no_kustomization_sets_a_namespace() -> None:
    """kustomize's `namespace:` rewrites every object's namespace, the kube-system
    RoleBinding's included, which then binds a Role that does not exist."""
    for path in MANIFESTS.rglob("kustomization.yaml"):
        assert "namespace" not in _docs(path)[0], path


def test_extractor_has_exactly_the_privileges_it_needs(pod_spec: Obj) -> None:
    assert pod_spec["hostPID"] is True
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostIPC")
    sc = _container(pod_spec, "extractor")["securityContext"]
    assert sc["runAsUser"] == 0
    assert not sc.get("privileged")
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sorted(sc["capabilities"]["add"]) == ["DAC_READ_SEARCH", "SYS_PTRACE"]


def test_host_paths_are_mounted_read_only(pod_spec: Obj) -> None:
    """The node is only read; the one writable host directory is the meter's spool, which
    only the exporter (and the init container that hands it over) mounts."""
    host_volumes = {
        v["name"]: v["hostPath"]["path"] for v in pod_spec["volumes"] if "hostPath" in v
    }
    assert set(host_volumes.values()) == {
        "/sys/fs/cgroup",
        "/run/containerd/io.containerd.runtime.v2.task",
        "/run/containers/storage/overlay-containers",
        "/var/lib/runtime-insights/meter",
    }
    spool = next(n for n, p in host_volumes.items() if p == "/var/lib/runtime-insights/meter")
    for container in [*pod_spec["containers"], *pod_spec["initContainers"]]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] in host_volumes and mount["name"] != spool:
                assert mount.get("readOnly") is True, (container["name"], mount["name"])
    exporter_mounts = {m["name"] for m in _container(pod_spec, "exporter")["volumeMounts"]}
    assert exporter_mounts & set(host_volumes) == {spool}
    extractor_mounts = {m["name"] for m in _container(pod_spec, "extractor")["volumeMounts"]}
    assert spool not in extractor_mounts


def test_the_meter_spool_belongs_to_the_exporter(pod_spec: Obj) -> None:
    """The init container gives the kubelet-created spool directory to exactly the user
    the exporter runs as, with nothing but CHOWN, and the exporter is told to use it."""
    exporter = _container(pod_spec, "exporter")
    settings = exporter_settings(exporter)
    (init,) = pod_spec["initContainers"]
    sc = init["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert "command" not in init  # the image's entrypoint: no shell needed (nor there)
    args = build_parser().parse_args(init["args"])
    owner = (
        f"{exporter['securityContext']['runAsUser']}:{exporter['securityContext']['runAsGroup']}"
    )
    assert (args.command, args.owner, args.directory) == (
        "prepare-spool",
        owner,
        settings.meter_spool_dir,
    )
    init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    exporter_mounts = {m["mountPath"]: m for m in exporter["volumeMounts"]}
    spool_mount = exporter_mounts[settings.meter_spool_dir]
    assert init_mounts[settings.meter_spool_dir] == spool_mount["name"]
    assert not spool_mount.get("readOnly")
    volume = next(v for v in pod_spec["volumes"] if v["name"] == spool_mount["name"])
    assert volume["hostPath"]["type"] == "DirectoryOrCreate"


def test_openmeter_is_configured_from_optional_objects(pod_spec: Obj) -> None:
    """Metering stays off until the user creates the ConfigMap (URL) and, for OpenMeter
    Cloud, the Secret (token); neither missing object keeps the pod from starting."""
    exporter = _container(pod_spec, "exporter")
    env = {e["name"]: e for e in exporter["env"]}
    url_ref = env["RUNTIME_INSIGHTS_OPENMETER_URL"]["valueFrom"]["configMapKeyRef"]
    assert url_ref["optional"] is True
    settings = exporter_settings(exporter)
    assert settings.openmeter_url is None and settings.openmeter_token_file is not None
    token = Path(settings.openmeter_token_file)
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mounts[str(token.parent)])
    assert volume["secret"]["optional"] is True
    assert volume["secret"]["items"] == [{"key": "token", "path": token.name}]


def test_extractor_arguments_parse_with_the_real_cli(pod_spec: Obj) -> None:
    args = build_parser().parse_args(_container(pod_spec, "extractor")["args"])
    assert (args.command, args.extractor_command) == ("extractor", "serve")
    mounts = {m["mountPath"]: m["name"] for m in _container(pod_spec, "extractor")["volumeMounts"]}
    assert mounts[str(Path(args.socket).parent)] == "socket"
    assert mounts[args.cgroup_root] == "host-cgroup"


def test_exporter_runs_unprivileged(pod_spec: Obj) -> None:
    sc = _container(pod_spec, "exporter")["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert not sc.get("privileged")
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_exporter_environment_is_valid_settings(pod_spec: Obj) -> None:
    exporter = _container(pod_spec, "exporter")
    assert build_parser().parse_args(exporter["args"]).command == "exporter"
    env = {e["name"]: e for e in exporter["env"]}
    prefix = "RUNTIME_INSIGHTS_"
    fields = {name.removeprefix(prefix).lower() for name in env}
    assert fields <= set(Settings.model_fields), fields - set(Settings.model_fields)
    assert (
        env["RUNTIME_INSIGHTS_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    )
    settings = exporter_settings(exporter)
    assert settings.auth_enabled is True
    assert settings.tls_cert_file and settings.tls_key_file
    (port,) = exporter["ports"]
    assert (port["name"], port["containerPort"]) == ("https", settings.port)
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    assert mounts[str(Path(settings.extractor_socket).parent)] == "socket"
    assert mounts[str(Path(settings.tls_cert_file).parent)] == "tls"


def test_front_proxy_trust_comes_from_the_cluster(base: list[Obj], pod_spec: Obj) -> None:
    """No CA file is set (it would win over the ConfigMap), no hand-made copy is mounted,
    and the exporter's service account may read the ConfigMap."""
    exporter = _container(pod_spec, "exporter")
    settings = exporter_settings(exporter)
    assert settings.auth_enabled and settings.tls_cert_file
    assert settings.requestheader_client_ca_file is None
    assert not [v for v in pod_spec["volumes"] if "requestheader" in v["name"]]
    binding = _one(base, "RoleBinding", "runtime-insights-auth-reader")
    assert binding["metadata"]["namespace"] == CONFIGMAP_NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": READER_ROLE,
    }
    sa = _one(base, "ServiceAccount")["metadata"]
    assert pod_spec["serviceAccountName"] == sa["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
    ]
    # The Role is bootstrap RBAC that kube-apiserver maintains: not ours to ship.
    assert not [o for o in base if o["kind"] == "Role" and o["metadata"]["name"] == READER_ROLE]


def test_only_the_exporter_holds_kubernetes_credentials(base: list[Obj], pod_spec: Obj) -> None:
    assert _one(base, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod_spec["automountServiceAccountToken"] is False
    token_mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    holders = [
        c["name"]
        for c in pod_spec["containers"]
        if any(m["mountPath"] == token_mount for m in c.get("volumeMounts", []))
    ]
    assert holders == ["exporter"]


def test_probes_use_unauthenticated_health_paths(pod_spec: Obj) -> None:
    exporter = _container(pod_spec, "exporter")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = exporter[probe]["httpGet"]
        assert get["path"] == path and path in PUBLIC_PATHS
        assert (get["port"], get["scheme"]) == ("https", "HTTPS")


def test_every_container_has_requests_and_limits(pod_spec: Obj) -> None:
    for container in [*pod_spec["containers"], *pod_spec["initContainers"]]:
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]


def test_service_network_policy_and_apiservice_point_at_the_exporter(
    base: list[Obj], pod_spec: Obj
) -> None:
    daemonset = _one(base, "DaemonSet")
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    service = _one(base, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "https"

    policy = _one(base, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ports == [{"protocol": "TCP", "port": 8443}]

    # every group-version the exporter serves (exporter/http/custom_metrics.py,
    # external_metrics.py), v1beta2 preferred over v1beta1 as the HPA's discovery expects
    served = {
        ("custom.metrics.k8s.io", "v1beta2"): 200,
        ("custom.metrics.k8s.io", "v1beta1"): 100,
        ("external.metrics.k8s.io", "v1beta1"): 100,
    }
    assert {o["metadata"]["name"] for o in base if o["kind"] == "APIService"} == {
        f"{version}.{group}" for group, version in served
    }
    for (group, version), priority in served.items():
        spec = _one(base, "APIService", f"{version}.{group}")["spec"]
        assert (spec["group"], spec["version"], spec["versionPriority"]) == (
            group,
            version,
            priority,
        )
        assert not spec.get("insecureSkipTLSVerify")
        assert spec["service"]["name"] == service["metadata"]["name"]
        assert spec["service"]["namespace"] == service["metadata"]["namespace"]
        assert spec["service"]["port"] == service_port["port"]


def test_rbac_grants_the_exporter_what_it_calls(base: list[Obj]) -> None:
    role = _one(base, "ClusterRole", "runtime-insights")
    assert [r for r in role["rules"] if "nonResourceURLs" in r] == [
        {"nonResourceURLs": ["/v1/events"], "verbs": ["get"]}  # /v1/cluster/events' peers
    ]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        if "apiGroups" in rule
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
        ("custom.metrics.k8s.io", "pods", "get"),
        ("custom.metrics.k8s.io", "pods", "list"),
        # Object metrics read their object's selector (exporter/http/objects.py)
        *(
            (group, resource, verb)
            for group, resource in (
                ("", "services"),
                ("apps", "deployments"),
                ("apps", "statefulsets"),
                ("apps", "daemonsets"),
                ("batch", "jobs"),
            )
            for verb in ("get", "list")
        ),
    }
    binding = _one(base, "ClusterRoleBinding", "runtime-insights")
    assert binding["roleRef"]["name"] == "runtime-insights"
    sa = _one(base, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
    ]


def test_exporters_can_reach_and_verify_their_peers(base: list[Obj], pod_spec: Obj) -> None:
    """Peers: found by the DaemonSet's selector in the pod's namespace, called on the
    exporter's port (open in the NetworkPolicy), verified as the Service's DNS name."""
    exporter = _container(pod_spec, "exporter")
    settings = exporter_settings(exporter)
    assert settings.peers_enabled is True
    env = {e["name"]: e for e in exporter["env"]}
    namespace_ref = env["RUNTIME_INSIGHTS_PEER_NAMESPACE"]["valueFrom"]["fieldRef"]
    assert namespace_ref["fieldPath"] == "metadata.namespace"
    daemonset = _one(base, "DaemonSet")
    selector = parse_selector(settings.peer_selector)
    assert selector.matches(daemonset["spec"]["template"]["metadata"]["labels"])
    assert selector.matches(daemonset["spec"]["selector"]["matchLabels"])
    (port,) = exporter["ports"]
    assert settings.peer_port == port["containerPort"]
    policy_ports = [
        p["port"] for r in _one(base, "NetworkPolicy")["spec"]["ingress"] for p in r["ports"]
    ]
    assert settings.peer_port in policy_ports
    service = _one(base, "Service")["metadata"]
    assert settings.peer_server_name == f"{service['name']}.{service['namespace']}.svc"
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    assert settings.peer_ca_file is not None
    assert mounts[str(Path(settings.peer_ca_file).parent)] == "tls"


def test_exporter_role_covers_the_peer_requests(base: list[Obj]) -> None:
    """What a peer asks RBAC about the exporter's own service account, derived from the
    middleware: list for pods/*, get for one pod."""
    rules = _one(base, "ClusterRole", "runtime-insights")["rules"]
    for name in ("*", "web-1"):
        path = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/{name}/cpu_usage_rate"
        attrs = request_attributes("GET", path)["resourceAttributes"]
        assert any(
            attrs["group"] in r["apiGroups"]
            and attrs["resource"] in r["resources"]
            and attrs["verb"] in r["verbs"]
            for r in rules
        ), attrs


def test_openshift_exporters_trust_the_service_ca(pod_spec: Obj) -> None:
    kustomization = _docs(MANIFESTS / "openshift" / "kustomization.yaml")[0]
    patches = {p["target"]["kind"]: yaml.safe_load(p["patch"]) for p in kustomization["patches"]}
    spec = patches["DaemonSet"]["spec"]["template"]["spec"]
    (exporter,) = spec["containers"]
    assert exporter["name"] == "exporter"
    (ca_env,) = exporter["env"]
    assert ca_env["name"] == "RUNTIME_INSIGHTS_PEER_CA_FILE"
    mounts = {m["mountPath"]: m["name"] for m in exporter["volumeMounts"]}
    volume = next(
        v for v in spec["volumes"] if v["name"] == mounts[str(Path(ca_env["value"]).parent)]
    )
    # published by OpenShift in every namespace, key service-ca.crt (service-ca-operator README)
    assert volume["configMap"]["name"] == "openshift-service-ca.crt"
    assert Path(ca_env["value"]).name == "service-ca.crt"
    assert volume["name"] not in {v["name"] for v in pod_spec["volumes"]}


def test_reader_role_covers_what_the_middleware_asks(base: list[Obj]) -> None:
    (rule,) = _one(base, "ClusterRole", "runtime-insights-reader")["rules"]
    for method, path in (
        ("GET", "/v1/containers"),
        ("GET", "/v1/pods"),
        ("GET", "/v1/namespaces"),
        ("GET", "/metrics"),
        ("GET", "/metrics/cadvisor"),
        ("GET", "/gather_runtime_info"),
        ("POST", "/gather_runtime_info"),
        ("GET", "/readyz"),  # its details; the probes need no credentials
    ):
        attrs = request_attributes(method, path)["nonResourceAttributes"]
        assert attrs["verb"] in rule["verbs"]
        assert any(
            attrs["path"] == url or (url.endswith("*") and attrs["path"].startswith(url[:-1]))
            for url in rule["nonResourceURLs"]
        ), path


def _grants(role: Obj) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_collector_role_grants_what_collect_asks_and_nothing_more(base: list[Obj]) -> None:
    """`collect` lists the exporter pods and opens a WebSocket port-forward (a GET, so RBAC
    checks `get`; `create` covers SPDY clients) in the exporters' namespace — a role meant
    for a RoleBinding there — and lists the nodes, which only a ClusterRoleBinding can
    grant, so that lives in a role of its own; the exporters' data needs the reader role."""
    role = _one(base, "ClusterRole", "runtime-insights-collector")
    assert _grants(role) == {
        ("", "pods", "list"),
        ("", "pods/portforward", "get"),
        ("", "pods/portforward", "create"),
    }
    assert not any(rule.get("nonResourceURLs") for rule in role["rules"])
    nodes_role = _one(base, "ClusterRole", NODES_ROLE)
    assert _grants(nodes_role) == {("", "nodes", "list")}
    (reader,) = _one(base, "ClusterRole", "runtime-insights-reader")["rules"]
    attrs = request_attributes("GET", EXPORTER_PATH)["nonResourceAttributes"]
    assert attrs["verb"] in reader["verbs"]
    assert any(_url_covers(url, attrs["path"]) for url in reader["nonResourceURLs"])


def test_collect_defaults_match_the_deployment(base: list[Obj], pod_spec: Obj) -> None:
    """Run with no options, `collect` finds the DaemonSet's pods, forwards the exporter's
    port and expects the certificate of the Service's DNS name."""
    args = build_parser().parse_args(["collect"])
    assert (args.via, args.namespace) == ("port-forward", NAMESPACE)
    key, _, value = args.selector.partition("=")
    assert _one(base, "DaemonSet")["spec"]["template"]["metadata"]["labels"][key] == value
    (port,) = _container(pod_spec, "exporter")["ports"]
    assert args.port in (port["name"], str(port["containerPort"]))
    assert _one(base, "Service")["metadata"]["name"] == SERVICE_NAME
    # The nodes collect expects an exporter on are those the DaemonSet selects.
    key, _, value = LINUX_NODES.partition("=")
    assert pod_spec["nodeSelector"] == {key: value}


def test_openshift_scc_admits_the_daemonset_and_nothing_more(pod_spec: Obj) -> None:
    objects = _resources(MANIFESTS / "openshift")
    scc = _one(objects, "SecurityContextConstraints")
    assert "namespace" not in scc["metadata"]
    assert scc["allowHostPID"] is True
    assert scc["allowHostDirVolumePlugin"] is True
    assert scc["allowPrivilegedContainer"] is False
    assert scc["allowPrivilegeEscalation"] is False
    assert scc["allowHostNetwork"] is False and scc["allowHostIPC"] is False
    assert scc["allowHostPorts"] is False
    assert scc["readOnlyRootFilesystem"] is True
    added = {
        cap
        for c in [*pod_spec["containers"], *pod_spec["initContainers"]]
        for cap in c["securityContext"]["capabilities"].get("add", [])
    }
    assert sorted(scc["allowedCapabilities"]) == sorted(added)
    assert scc["requiredDropCapabilities"] == ["ALL"]
    assert scc["runAsUser"]["type"] == "RunAsAny"
    assert scc["seLinuxContext"]["type"] == "RunAsAny"
    selinux = _container(pod_spec, "extractor")["securityContext"]["seLinuxOptions"]
    assert selinux["type"] == "spc_t"

    volume_types = {next(k for k in v if k != "name") for v in pod_spec["volumes"]}
    assert volume_types <= set(scc["volumes"])

    role = _one(objects, "Role", "runtime-insights-scc")
    assert role["rules"] == [
        {
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": [scc["metadata"]["name"]],
            "verbs": ["use"],
        }
    ]
    kustomization = _docs(MANIFESTS / "openshift" / "kustomization.yaml")[0]
    patches = {p["target"]["kind"]: yaml.safe_load(p["patch"]) for p in kustomization["patches"]}
    annotations = patches["DaemonSet"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["openshift.io/required-scc"] == scc["metadata"]["name"]
    service_annotations = patches["Service"]["metadata"]["annotations"]
    tls_secret = next(v["secret"]["secretName"] for v in pod_spec["volumes"] if v["name"] == "tls")
    assert service_annotations["service.beta.openshift.io/serving-cert-secret-name"] == tls_secret


def test_cert_manager_issues_the_mounted_secret_for_the_service(
    base: list[Obj], pod_spec: Obj
) -> None:
    objects = _resources(MANIFESTS / "cert-manager")
    tls_secret = next(v["secret"]["secretName"] for v in pod_spec["volumes"] if v["name"] == "tls")
    (serving,) = [
        o for o in objects if o["kind"] == "Certificate" and o["spec"]["secretName"] == tls_secret
    ]
    service = _one(base, "Service")["metadata"]
    assert f"{service['name']}.{service['namespace']}.svc" in serving["spec"]["dnsNames"]
    kustomization = _docs(MANIFESTS / "cert-manager" / "kustomization.yaml")[0]
    patched = {p["target"]["name"]: yaml.safe_load(p["patch"]) for p in kustomization["patches"]}
    namespace = serving["metadata"]["namespace"]
    injected = f"{namespace}/{serving['metadata']['name']}"
    api_services = {o["metadata"]["name"] for o in base if o["kind"] == "APIService"}
    assert set(patched) == api_services  # every APIService gets the CA
    for patch in patched.values():
        assert patch["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == injected
