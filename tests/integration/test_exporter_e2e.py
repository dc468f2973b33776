"""End to end on this machine: real containerd containers, the real extractor on its unix
socket, the real ``runtime-insights exporter``, and the fake API server describing the
same pod (same UID, the fixture's container IDs).

Expected values are read here from their sources: CPU from the kernel's cpuacct counters,
fingerprints from the os-release file this test writes into the containers' root and
from the extractor's own snapshot, pod metadata from the reflector's conversion of the
Pod object the fake API server serves. The exporter runs as the manifests deploy it:
TLS from certificate files (made with the real ``openssl``) and every request
authenticated by TokenReview and authorized by SubjectAccessReview against the fake API
server; one test drives every endpoint with the real ``curl``. The last test stops the
API server: the exporter must keep serving with the runtime's names and say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.http.insights import hash_value
from exporter.kube.podmeta import PodMeta
from exporter.kube.pods import pod_meta
from exporter.kube.quantity import parse_quantity
from extractor.contract import Snapshot
from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.support.certs import make_ca, make_cert
from tests.support.containerd import Containerd, ContainerdPod, burner_argv, skip_reason

pytestmark = [pytest.mark.root, pytest.mark.containerd]

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")
NODE = "node-e2e"
WAIT = 60.0
READER_TOKEN = "e2e-reader-token"
"""A caller granted what ClusterRole runtime-insights-reader grants (and custom metrics)."""
STRANGER_TOKEN = "e2e-stranger-token"
"""A caller the API server knows but RBAC grants nothing."""


def cpuacct_ns(cgroup: str) -> int:
    with open(f"/sys/fs/cgroup/cpuacct{cgroup}/cpuacct.usage", encoding="ascii") as f:
        return int(f.read())


@dataclass
class Stack:
    pod: ContainerdPod
    meta: PodMeta
    os_id: str
    os_version: str
    url: str
    socket: str
    api: FakeApiServer
    loop: asyncio.AbstractEventLoop
    ca: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {READER_TOKEN}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, verify=self.trust, headers=self.auth, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, verify=self.trust, headers=self.auth, **kw)

    @property
    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def curl(self, path: str, *args: str, token: str | None = READER_TOKEN) -> tuple[int, str]:
        """(HTTP status, body) from the real curl, verifying the exporter's certificate."""
        auth = ("-H", f"Authorization: Bearer {token}") if token else ()
        done = subprocess.run(
            ["curl", "-sS", "--cacert", str(self.ca), *auth, *args,
             "-w", "\n%{http_code}", self.url + path],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode in (0, 28), done.stderr  # 28: --max-time ended a stream
        body, _, status = done.stdout.rpartition("\n")
        return int(status), body

    def until(self, path: str, check: Any, what: str) -> httpx.Response:
        """Poll ``path`` until ``check(response)``; fail with the last answer."""
        deadline = time.monotonic() + WAIT
        while True:
            resp = self.get(path)
            if check(resp):
                return resp
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: last answer {resp.status_code} {resp.text[:500]}")
            time.sleep(0.2)

    def extractor_snapshot(self) -> Snapshot:
        transport = httpx.HTTPTransport(uds=self.socket)
        with httpx.Client(transport=transport, timeout=60) as client:
            return Snapshot.model_validate_json(client.get("http://x/v1/snapshot").content)


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m.group(1)
        assert proc.poll() is None, f"process exited: {text}"
        time.sleep(0.1)
    pytest.fail(f"{pattern!r} never appeared in {path}")


def _start_api(pod: ContainerdPod, labels: dict[str, str]) -> tuple[FakeApiServer, Any, Any]:
    """The fake API server on its own event loop thread (the test body is synchronous),
    with the reader's and the stranger's tokens and the reader's RBAC grants."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    api = FakeApiServer(bookmark_interval=0.5)
    asyncio.run_coroutine_threadsafe(api.__aenter__(), loop).result(30)
    api.add_token(READER_TOKEN, "system:serviceaccount:monitoring:reader")
    api.add_token(STRANGER_TOKEN, "system:serviceaccount:default:stranger")
    for verb, path in (
        ("get", "/v1/*"),
        ("get", "/gather_runtime_info"),
        ("post", "/gather_runtime_info"),
        ("get", "/metrics"),
        ("get", "/readyz"),
        ("get", "/metrics/cadvisor"),
    ):
        api.allow("system:serviceaccount:monitoring:reader", verb, path=path)
    # discovery (/apis/<group>/<version>): what the bootstrap ClusterRole system:discovery
    # grants every authenticated user
    api.allow("system:serviceaccount:monitoring:reader", "get", path="/apis/*")
    for verb in ("get", "list"):
        api.allow(
            "system:serviceaccount:monitoring:reader",
            verb,
            resource="pods",
            api_group="custom.metrics.k8s.io",
        )
    obj = api.add_pod(
        make_pod(
            pod.pod_name,
            pod.namespace,
            uid=pod.pod_uid,
            node=NODE,
            containers=[
                FakeContainer("app", container_id=pod.containers["app"], restart_count=1),
                FakeContainer("burner", container_id=pod.containers["burner"], restart_count=4),
            ],
            labels=labels,
            annotations={"e2e.runtime-insights/run": labels["run"]},
            owner=("ReplicaSet", f"{pod.pod_name}-7d4b9c8f6"),
        )
    )
    return api, loop, obj


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    run = secrets.token_hex(4)
    base = tempfile.mkdtemp(prefix="ri-e2x-", dir="/tmp")
    procs: list[subprocess.Popen[bytes]] = []
    daemon: Containerd | None = None
    api: FakeApiServer | None = None
    loop: asyncio.AbstractEventLoop | None = None
    try:
        daemon = Containerd.start(base)
        os_id, os_version = "rie2e", f"1.{int(run, 16) % 1000}"
        etc = Path(daemon.rootfs, "etc")
        etc.mkdir(exist_ok=True)
        (etc / "os-release").write_text(f'ID={os_id}\nVERSION_ID="{os_version}"\n')
        pod = daemon.run_pod(
            f"shop-{run}", f"web-{run}", {"app": ["/bin/sleep", "100000"], "burner": burner_argv()}
        )
        sock = os.path.join(base, "extractor.sock")
        ext_log = Path(base, "extractor.log")
        with ext_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        *(CLI, "extractor", "serve", "--socket", sock),
                        *("--containerd-state", pod.task_root, "--proc-root", "/proc"),
                        *("--cgroup-root", "/sys/fs/cgroup"),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + WAIT
        while not os.path.exists(sock):
            assert procs[0].poll() is None, ext_log.read_text()
            assert time.monotonic() < deadline, "extractor socket never appeared"
            time.sleep(0.1)
        labels = {"app": "web", "run": run}
        api, loop, obj = _start_api(pod, labels)
        kubeconfig = api.write_kubeconfig(Path(base, "kubeconfig"))
        ca = make_ca(Path(base), "ri-e2e-ca")
        serving = make_cert(Path(base), ca, "127.0.0.1")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
        env.update(
            RUNTIME_INSIGHTS_HOST="127.0.0.1",
            RUNTIME_INSIGHTS_PORT="0",
            RUNTIME_INSIGHTS_TLS_CERT_FILE=str(serving.cert),
            RUNTIME_INSIGHTS_TLS_KEY_FILE=str(serving.key),
            RUNTIME_INSIGHTS_AUTH_ENABLED="true",
            RUNTIME_INSIGHTS_EXTRACTOR_SOCKET=sock,
            RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS="1",
            RUNTIME_INSIGHTS_KUBECONFIG=str(kubeconfig),
            RUNTIME_INSIGHTS_NODE_NAME=NODE,
            RUNTIME_INSIGHTS_API_READ_TIMEOUT_SECONDS="5",
            RUNTIME_INSIGHTS_WATCH_TIMEOUT_SECONDS="3",
        )
        exp_log = Path(base, "exporter.log")
        with exp_log.open("wb") as out:
            exporter = subprocess.Popen(
                [CLI, "exporter"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        procs.append(exporter)
        port = _wait_for(exp_log, r"listening on https://127\.0\.0\.1:(\d+)", exporter)
        yield Stack(
            pod=pod,
            meta=pod_meta(obj),
            os_id=os_id,
            os_version=os_version,
            url=f"https://127.0.0.1:{port}",
            socket=sock,
            api=api,
            loop=loop,
            ca=ca.cert,
        )
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if api is not None and loop is not None:
            asyncio.run_coroutine_threadsafe(api.__aexit__(None, None, None), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
        if daemon is not None:
            daemon.close()
        shutil.rmtree(base, ignore_errors=True)


def _ready_with_api(resp: httpx.Response) -> bool:
    body = resp.json() if resp.status_code == 200 else {}
    return bool(body.get("ready")) and body.get("metadataSource") == "api"


def _ours(stack: Stack, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ids = set(stack.pod.containers.values())
    return {c["container"]: c for c in body["containers"] if c["id"] in ids}


def _fresh_containers(stack: Stack, after: float) -> dict[str, Any]:
    """/v1/containers from a pass that started after ``after`` (takenAt has 1 s steps)."""

    def fresh(resp: httpx.Response) -> bool:
        if resp.status_code != 200:
            return False
        taken = time.mktime(time.strptime(resp.json()["takenAt"], "%Y-%m-%dT%H:%M:%SZ"))
        return taken - time.timezone >= int(after) + 1 and len(_ours(stack, resp.json())) == 2

    query = f"/v1/containers?namespace={stack.pod.namespace}"
    body: dict[str, Any] = stack.until(query, fresh, "a fresh snapshot with both containers").json()
    return body


def _settled_burner_ns(stack: Stack) -> int:
    """The burner's counter once its loop is over (then it only sleeps)."""
    cgroup = stack.pod.cgroup_paths[stack.pod.containers["burner"]]
    deadline = time.monotonic() + WAIT
    last = cpuacct_ns(cgroup)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpuacct_ns(cgroup)
        if now == last:
            return now
        last = now
    pytest.fail("the burner never settled")


def test_containers_carry_api_names_kernel_cpu_and_fingerprints(stack: Stack) -> None:
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    before = _settled_burner_ns(stack)
    t0 = time.time()
    body = _fresh_containers(stack, t0)
    after = cpuacct_ns(stack.pod.cgroup_paths[stack.pod.containers["burner"]])
    assert body["metadataSource"] == "api"
    ours = _ours(stack, body)
    assert set(ours) == {st.name for st in stack.meta.containers}
    statuses = {st.name: st for st in stack.meta.containers}
    for name, doc in ours.items():
        assert doc["id"] == stack.pod.containers[name]
        assert doc["containerId"] == f"containerd://{doc['id']}"
        assert (doc["namespace"], doc["pod"]) == (stack.meta.namespace, stack.meta.name)
        assert doc["podUid"] == stack.pod.pod_uid
        assert doc["metadataSource"] == "api"
        assert doc["labels"] == stack.meta.labels
        assert doc["restarts"] == statuses[name].restart_count
        assert doc["owner"] == (stack.meta.owner.model_dump() if stack.meta.owner else None)
        assert doc["fingerprint"]["os"] == stack.os_id
        assert doc["fingerprint"]["osVersion"] == stack.os_version
        assert doc["memory"]["currentBytes"] > 0
        assert doc["runtimeSeconds"] > 0
    burner = ours["burner"]["cpu"]["totalSeconds"]
    assert before > 0
    assert before / 1e9 <= burner <= after / 1e9


def test_fingerprints_pass_through_from_the_extractor(stack: Stack) -> None:
    snap = stack.extractor_snapshot()
    body = _fresh_containers(stack, time.time())
    ours = _ours(stack, body)
    for c in snap.containers:
        if c.id in stack.pod.containers.values():
            assert c.fingerprint is not None
            doc = next(d for d in ours.values() if d["id"] == c.id)
            expected = c.fingerprint.model_dump(exclude_none=True)
            if not expected.get("runtimes"):
                expected.pop("runtimes", None)
            assert doc["fingerprint"] == expected


def test_gather_runtime_info_on_real_containers(stack: Stack) -> None:
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    clear = stack.get("/gather_runtime_info?hash=false").json()
    pods = clear[stack.meta.namespace][stack.meta.name]
    for cid in stack.pod.containers.values():
        assert pods[f"containerd://{cid}"]["os"] == stack.os_id
        assert pods[f"containerd://{cid}"]["osVersion"] == stack.os_version
    assert f"containerd://{stack.pod.sandbox_id}" not in pods
    hashed = stack.get("/gather_runtime_info").json()[stack.meta.namespace][stack.meta.name]
    app = f"containerd://{stack.pod.containers['app']}"
    assert hashed[app]["os"] == hash_value(stack.os_id)
    one = stack.post(
        "/gather_runtime_info?hash=false",
        json={"containerIds": [stack.pod.containers["burner"], "containerd://" + "0" * 64]},
    ).json()
    assert list(one) == [stack.meta.namespace]
    assert list(one[stack.meta.namespace][stack.meta.name]) == [
        f"containerd://{stack.pod.containers['burner']}"
    ]
    # ids matched as the replaced tool's extractor matches them (tests/exporter/http/
    # test_gather_runtime_info.py names its source): one id split on commas and trimmed,
    # a containerd:// id names this containerd container, another prefix names nothing
    app_id, burner_id = stack.pod.containers["app"], stack.pod.containers["burner"]
    both = stack.post(
        "/gather_runtime_info?hash=false",
        json={"containerIds": [f" containerd://{app_id} ,{burner_id}", f"docker://{app_id}"]},
    )
    assert both.status_code == 200
    assert both.headers["Content-Type"] == "application/json"
    assert set(both.json()[stack.meta.namespace][stack.meta.name]) == {
        f"containerd://{app_id}",
        f"containerd://{burner_id}",
    }
    none = stack.post("/gather_runtime_info", json={"containerIds": [f"docker://{app_id}"]})
    assert none.json() == {}
    bad = stack.post("/gather_runtime_info", content=b'{"containerIds": 1}')
    assert (bad.status_code, bad.text) == (400, '{"error": "Invalid JSON in request body"}\n')


def test_metrics_and_custom_metrics_match_the_kernel(stack: Stack) -> None:
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    before = _settled_burner_ns(stack)
    _fresh_containers(stack, time.time())
    text = stack.get("/metrics").text
    burner_id = stack.pod.containers["burner"]
    samples = {
        (s.name, s.labels.get("container_id") or s.labels.get("pod_uid")): s
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    cpu = samples[("runtime_insights_container_cpu_seconds_total", burner_id)]
    assert cpu.labels["pod"] == stack.meta.name and cpu.labels["container"] == "burner"
    after = cpuacct_ns(stack.pod.cgroup_paths[burner_id])
    assert before / 1e9 <= cpu.value <= after / 1e9
    info = samples[("runtime_insights_container_fingerprint_info", burner_id)]
    assert info.labels["os"] == stack.os_id and info.labels["metadata_source"] == "api"
    pod_cpu = samples[("runtime_insights_pod_cpu_seconds_total", stack.pod.pod_uid)]
    assert pod_cpu.value <= cpuacct_ns(stack.pod.pod_cgroup) / 1e9
    assert pod_cpu.value >= cpu.value

    base = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{stack.meta.namespace}/pods"
    one = stack.get(f"{base}/{stack.meta.name}/cpu_seconds_total").json()
    [item] = one["items"]
    assert item["describedObject"]["name"] == stack.meta.name
    assert float(parse_quantity(item["value"])) <= cpuacct_ns(stack.pod.pod_cgroup) / 1e9
    rate = stack.until(
        f"{base}/*/cpu_usage_rate?labelSelector=run%3D{stack.meta.labels['run']}",
        lambda r: r.status_code == 200 and len(r.json()["items"]) == 1,
        "a CPU rate for the pod",
    ).json()
    assert parse_quantity(rate["items"][0]["value"]) >= 0


def test_cadvisor_families_of_real_containers_match_the_kernel(stack: Stack) -> None:
    """The kubelet-compatible endpoint over the real containerd pod: the burner's CPU as
    the kernel counts it, labelled as the kubelet labels it, the pod cgroup beside it;
    /v1/namespaces adds the pod up."""
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    before = _settled_burner_ns(stack)
    _fresh_containers(stack, time.time())
    status, text = stack.curl("/metrics/cadvisor")
    assert status == 200
    burner_id = stack.pod.containers["burner"]
    cpu = {
        s.labels["id"]: s
        for f in text_string_to_metric_families(text)
        if f.name == "container_cpu_usage_seconds"
        for s in f.samples
    }
    (burner,) = [s for s in cpu.values() if s.labels["name"] == burner_id]
    assert stack.pod.cgroup_paths[burner_id].endswith(burner.labels["id"])
    assert (burner.labels["container"], burner.labels["pod"]) == ("burner", stack.meta.name)
    assert burner.labels["namespace"] == stack.meta.namespace and burner.labels["cpu"] == "total"
    after = cpuacct_ns(stack.pod.cgroup_paths[burner_id])
    assert before / 1e9 <= burner.value <= after / 1e9
    assert burner.timestamp is not None
    (pod,) = [s for s in cpu.values() if stack.pod.pod_cgroup.endswith(s.labels["id"])]
    assert (pod.labels["container"], pod.labels["name"], pod.labels["image"]) == ("", "", "")
    assert burner.value <= pod.value <= cpuacct_ns(stack.pod.pod_cgroup) / 1e9
    status, body = stack.curl(f"/v1/namespaces?namespace={stack.meta.namespace}")
    assert status == 200
    (ns,) = json.loads(body)["namespaces"]
    assert ns["pods"] == 1 and ns["cpu"]["usedCores"] >= 0


def test_every_endpoint_answers_curl_over_tls_with_a_bearer_token(stack: Stack) -> None:
    """What an operator does after `kubectl apply`: curl each endpoint of the exporter,
    verifying its certificate, with a service-account token."""
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    ns, pod = stack.meta.namespace, stack.meta.name
    ids = set(stack.pod.containers.values())

    status, body = stack.curl("/healthz", token=None)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = stack.curl("/readyz", token=None)
    assert (status, json.loads(body)) == (200, {"status": "ok", "reasonCodes": []})
    status, body = stack.curl("/livez", token=None)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = stack.curl("/readyz")
    assert status == 200 and json.loads(body)["metadataSource"] == "api"

    status, body = stack.curl(f"/v1/containers?namespace={ns}")
    assert status == 200
    docs = {d["id"]: d for d in json.loads(body)["containers"] if d["id"] in ids}
    assert {d["container"] for d in docs.values()} == set(stack.pod.containers)
    assert {d["fingerprint"]["os"] for d in docs.values()} == {stack.os_id}

    status, body = stack.curl(
        f"/v1/pods?namespace={ns}&labelSelector=run%3D{stack.meta.labels['run']}"
    )
    assert status == 200
    (pod_doc,) = json.loads(body)["pods"]
    assert (pod_doc["pod"], pod_doc["uid"]) == (pod, stack.pod.pod_uid)
    assert {c["id"] for c in pod_doc["containers"]} == ids
    assert pod_doc["owner"] == (stack.meta.owner.model_dump() if stack.meta.owner else None)
    assert pod_doc["cpu"]["totalSeconds"] <= cpuacct_ns(stack.pod.pod_cgroup) / 1e9

    status, body = stack.curl(
        "/gather_runtime_info?hash=false",
        "-X", "POST", "-H", "Content-Type: application/json",
        "-d", json.dumps({"containerIds": [f"containerd://{stack.pod.containers['app']}"]}),
    )  # fmt: skip
    assert status == 200
    assert json.loads(body) == {
        ns: {pod: {f"containerd://{stack.pod.containers['app']}": {
            "os": stack.os_id, "osVersion": stack.os_version}}}
    }  # fmt: skip

    status, body = stack.curl("/metrics")
    assert status == 200
    families = {f.name for f in text_string_to_metric_families(body)}
    assert {
        "runtime_insights_container_cpu_seconds",
        "runtime_insights_pod_cpu_seconds",
    } <= families

    root = "/apis/custom.metrics.k8s.io/v1beta2"
    status, body = stack.curl(root)
    assert status == 200 and json.loads(body)["kind"] == "APIResourceList"
    status, body = stack.curl(f"{root}/namespaces/{ns}/pods/{pod}/runtime_seconds")
    assert status == 200
    (item,) = json.loads(body)["items"]
    assert item["describedObject"] == {
        "kind": "Pod",
        "namespace": ns,
        "name": pod,
        "apiVersion": "v1",
    }

    status, body = stack.curl(f"/v1/events?namespace={ns}&initial=true", "-N", "--max-time", "3")
    assert status == 200
    starts = [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ")
    ]
    assert {e["containerID"] for e in starts} == {f"containerd://{i}" for i in ids}
    assert {(e["type"], e["podName"], e["node"]) for e in starts} == {("start", pod, NODE)}

    status, body = stack.curl("/v1/containers", token=None)
    assert status == 401 and json.loads(body)["code"] == 401
    status, body = stack.curl("/v1/containers", token=STRANGER_TOKEN)
    assert status == 403 and "stranger" in json.loads(body)["message"]
    status, _ = stack.curl("/v1/containers", token="not-a-token")
    assert status == 401


def test_api_server_down_keeps_serving_with_runtime_names(stack: Stack) -> None:
    """Also the authenticated reader keeps reading: its allow decision is honoured through
    the outage (RUNTIME_INSIGHTS_AUTH_OUTAGE_GRACE_SECONDS)."""
    stack.until("/readyz", _ready_with_api, "ready with API metadata")
    assert stack.get("/v1/containers").status_code == 200  # the reader is known
    asyncio.run_coroutine_threadsafe(stack.api.pause(), stack.loop).result(30)
    try:
        _serving_runtime_names(stack)
    finally:
        asyncio.run_coroutine_threadsafe(stack.api.resume(), stack.loop).result(30)


def _serving_runtime_names(stack: Stack) -> None:
    ready = stack.until(
        "/readyz",
        lambda r: r.status_code == 200 and r.json()["metadataSource"] == "runtime",
        "readiness reporting runtime metadata",
    ).json()
    assert ready["status"] == "degraded" and ready["reflector"] == "disconnected"
    assert any("API server unreachable" in reason for reason in ready["reasons"])
    body = stack.get(f"/v1/containers?namespace={stack.pod.namespace}").json()
    assert body["metadataSource"] == "runtime"
    ours = _ours(stack, body)
    assert set(ours) == set(stack.pod.containers)
    for name, doc in ours.items():
        assert doc["metadataSource"] == "runtime"
        assert (doc["pod"], doc["container"]) == (stack.pod.pod_name, name)
        assert doc["labels"] == {} and doc["restarts"] is None
    metrics = stack.get("/metrics").text
    assert "runtime_insights_exporter_metadata_from_api 0.0" in metrics
