"""The pod reflector against the fake API server: list, watch, bookmarks, drops, 410, outages."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.kube.client import (
    ApiError,
    KubeClient,
    KubeConfigError,
    api_path,
    load_configuration,
)
from exporter.kube.reflector import PodEvent, PodReflector
from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.support.paths import REPO_ROOT

NODE = "node-a"
ROOT = REPO_ROOT


async def wait_for(predicate: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    """Poll until true; the limit only stops a broken reflector from hanging the suite."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def next_events(queue: asyncio.Queue[PodEvent], count: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(count):
        event = await asyncio.wait_for(queue.get(), timeout=15)
        out.append((event.type, event.pod.name))
    return out


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.3) as server:
        yield server


@pytest.fixture
async def client(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[KubeClient]:
    kube = KubeClient(load_configuration(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))
    yield kube
    await kube.aclose()


def make_reflector(client: KubeClient, **kw: Any) -> PodReflector:
    return PodReflector(
        client,
        NODE,
        watch_timeout_seconds=1,
        read_timeout_seconds=3,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.2,
        **kw,
    )


@pytest.fixture
async def reflector(client: KubeClient) -> AsyncIterator[PodReflector]:
    r = make_reflector(client)
    yield r
    await r.stop()


async def test_initial_list_holds_only_this_nodes_pods(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    mine = [api.add_pod(make_pod(f"mine-{i}", node=NODE)) for i in range(3)]
    api.add_pod(make_pod("other", node="node-b"))
    queue = reflector.subscribe()
    before = (reflector.state, reflector.synced)
    await reflector.start()
    await wait_for(lambda: reflector.synced, "first list")
    assert before == ("starting", False)
    assert reflector.state == "synced" and reflector.last_error is None
    assert sorted(p.name for p in reflector.pods()) == ["mine-0", "mine-1", "mine-2"]
    assert sorted(await next_events(queue, 3)) == [("ADDED", f"mine-{i}") for i in range(3)]
    pod = reflector.get_by_uid(mine[0]["metadata"]["uid"])
    assert pod is not None and pod.name == "mine-0"
    assert pod.resource_version == mine[0]["metadata"]["resourceVersion"]
    assert api.calls["list"] == 1


async def test_watch_delivers_add_modify_delete(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    queue = reflector.subscribe()
    await reflector.start()
    await wait_for(lambda: reflector.state == "synced", "sync")
    app = FakeContainer("app")
    pod = api.add_pod(make_pod("web", node=NODE, containers=[app]))
    assert await next_events(queue, 1) == [("ADDED", "web")]
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    found = reflector.get_by_container_id(container_id)
    assert found is not None and found[0].name == "web" and found[1].name == "app"
    assert reflector.get_by_container_id(container_id.split("://")[1]) == found

    app.state, app.exit_code = "terminated", 3
    api.update_pod(make_pod("web", node=NODE, containers=[app]))
    event = await asyncio.wait_for(queue.get(), timeout=15)
    assert (event.type, event.pod.containers[0].state) == ("MODIFIED", "terminated")
    assert event.pod.containers[0].exit_code == 3

    api.delete_pod("default", "web")
    assert await next_events(queue, 1) == [("DELETED", "web")]
    assert reflector.pods() == []
    assert reflector.get_by_container_id(container_id) is None
    # kept by UID for a while, for the meter's final reading of a pod that is gone
    gone = reflector.get_by_uid(pod["metadata"]["uid"])
    assert gone is not None and gone.containers[0].state == "terminated"


async def test_bookmarks_advance_the_resource_version(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    await reflector.start()
    await wait_for(lambda: reflector.synced, "sync")
    api.add_pod(make_pod("elsewhere", node="node-b"))  # filtered out: only a bookmark says so
    target = str(api.resource_version)
    await wait_for(lambda: reflector.resource_version == target, f"bookmark to RV {target}")
    assert reflector.pods() == []


async def test_dropped_watch_resumes_without_loss_or_duplicates(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    queue = reflector.subscribe()
    api.add_pod(make_pod("a", node=NODE))
    api.add_pod(make_pod("b", node=NODE))
    await reflector.start()
    assert sorted(await next_events(queue, 2)) == [("ADDED", "a"), ("ADDED", "b")]
    watches_before = api.calls["watch"]

    await api.drop_watches()
    api.add_pod(make_pod("c", node=NODE))
    api.delete_pod("default", "a")
    await api.pause()  # changes while nobody can connect
    api.add_pod(make_pod("d", node=NODE))
    api.update_pod(make_pod("b", node=NODE, labels={"v": "2"}))
    await wait_for(lambda: reflector.state == "disconnected", "disconnect")
    await api.resume()

    got = await next_events(queue, 4)
    assert sorted(got) == sorted(
        [("ADDED", "c"), ("DELETED", "a"), ("ADDED", "d"), ("MODIFIED", "b")]
    )
    await wait_for(lambda: reflector.state == "synced", "re-sync")
    await asyncio.sleep(0.5)  # would expose a duplicate replay, if there were one
    assert queue.empty()
    assert api.calls["list"] == 1, "a resumable watch must not re-list"
    assert api.calls["watch"] > watches_before
    assert sorted(p.name for p in reflector.pods()) == ["b", "c", "d"]
    b = next(p for p in reflector.pods() if p.name == "b")
    assert b.labels == {"v": "2"}


@pytest.mark.parametrize("as_http_status", [False, True], ids=["error-event", "http-410"])
async def test_expired_resource_version_relists_and_reports_missed_deletes(
    as_http_status: bool, api: FakeApiServer, reflector: PodReflector
) -> None:
    api.expired_as_http_status = as_http_status
    queue = reflector.subscribe()
    gone_uid = api.add_pod(make_pod("gone", node=NODE))["metadata"]["uid"]
    for name in ("kept", "changed"):
        api.add_pod(make_pod(name, node=NODE))
    await reflector.start()
    await next_events(queue, 3)

    await api.pause()
    await wait_for(lambda: reflector.state == "disconnected", "disconnect")
    api.delete_pod("default", "gone")
    api.update_pod(make_pod("changed", node=NODE, labels={"v": "2"}))
    api.add_pod(make_pod("new", node=NODE))
    api.compact()
    await api.resume()

    got = await next_events(queue, 3)
    assert sorted(got) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "changed")]
    await wait_for(lambda: reflector.state == "synced", "re-sync")
    assert api.calls["list"] == 2
    lists = [query for _, query in api.pod_requests if "watch" not in query]
    assert "resourceVersion" not in lists[1], "a re-list after 410 must be a consistent read"
    assert sorted(p.name for p in reflector.pods()) == ["changed", "kept", "new"]
    target = str(api.resource_version)
    await wait_for(lambda: reflector.resource_version == target, "RV after relist")
    found = reflector.get_by_uid(gone_uid)  # a deletion seen only by the relist is kept too
    assert found is not None and found.name == "gone"


async def test_unreachable_api_is_reported_then_recovers(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    api.add_pod(make_pod("a", node=NODE))
    await api.pause()
    await reflector.start()
    await wait_for(lambda: reflector.state == "disconnected", "disconnected state")
    assert not reflector.synced
    assert reflector.last_error and "Connection" in reflector.last_error
    assert reflector.pods() == []

    await api.resume()
    await wait_for(lambda: reflector.synced, "recovery")
    assert reflector.state == "synced" and reflector.last_error is None
    assert [p.name for p in reflector.pods()] == ["a"]


async def test_static_pod_is_found_by_its_cgroup_uid(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    config_hash = "c704ef4c297ab11032b83ce52cbfc87b"
    raw = api.add_pod(
        make_pod(
            "kube-apiserver-node-a",
            "kube-system",
            node=NODE,
            annotations={"kubernetes.io/config.mirror": config_hash},
        )
    )
    await reflector.start()
    await wait_for(lambda: reflector.synced, "sync")
    by_hash = reflector.get_by_uid(config_hash)
    by_uid = reflector.get_by_uid(raw["metadata"]["uid"])
    assert by_hash is not None and by_hash == by_uid
    assert by_hash.cgroup_uid == config_hash and by_hash.uid == raw["metadata"]["uid"]


async def test_deleted_pods_are_found_by_uid_for_their_retention_only(
    api: FakeApiServer, client: KubeClient
) -> None:
    now = [1000.0]
    r = make_reflector(client, deleted_retention_seconds=600.0, clock=lambda: now[0])
    config_hash = "c704ef4c297ab11032b83ce52cbfc87b"
    raw = api.add_pod(
        make_pod(
            "etcd-node-a",
            "kube-system",
            node=NODE,
            annotations={"kubernetes.io/config.mirror": config_hash},
        )
    )
    queue = r.subscribe()
    await r.start()
    try:
        await next_events(queue, 1)
        api.delete_pod("kube-system", "etcd-node-a")
        assert await next_events(queue, 1) == [("DELETED", "etcd-node-a")]
        now[0] += 599.0
        by_hash, by_uid = r.get_by_uid(config_hash), r.get_by_uid(raw["metadata"]["uid"])
        assert by_hash is not None and by_hash == by_uid and by_hash.name == "etcd-node-a"
        assert r.pods() == []
        now[0] += 2.0
        assert r.get_by_uid(config_hash) is None
        assert r.get_by_uid(raw["metadata"]["uid"]) is None
    finally:
        await r.stop()


async def test_deleted_pods_kept_are_bounded_oldest_first(
    api: FakeApiServer, client: KubeClient
) -> None:
    r = make_reflector(client, max_deleted=2)
    uids = [api.add_pod(make_pod(f"p{i}", node=NODE))["metadata"]["uid"] for i in range(3)]
    queue = r.subscribe()
    await r.start()
    try:
        await next_events(queue, 3)
        for i in range(3):
            api.delete_pod("default", f"p{i}")
        await next_events(queue, 3)
        assert [r.get_by_uid(u) is not None for u in uids] == [False, True, True]
    finally:
        await r.stop()


async def test_malformed_pod_is_skipped_not_fatal(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    bad = make_pod("bad", node=NODE)
    bad["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    api.add_pod(bad)
    api.add_pod(make_pod("good", node=NODE))
    await reflector.start()
    await wait_for(lambda: reflector.synced, "sync")
    assert [p.name for p in reflector.pods()] == ["good"]
    assert reflector.conversion_errors == 1
    assert reflector.state == "synced"


async def test_slow_subscriber_loses_the_oldest_events_and_they_are_counted(
    api: FakeApiServer, client: KubeClient
) -> None:
    reflector = make_reflector(client, queue_size=2)
    queue = reflector.subscribe()
    for i in range(5):
        api.add_pod(make_pod(f"p{i}", node=NODE))
    await reflector.start()
    try:
        await wait_for(lambda: reflector.dropped_events == 3, "drops")
        kept = [queue.get_nowait().pod.name for _ in range(queue.qsize())]
        assert len(kept) == 2
        assert set(kept) < {f"p{i}" for i in range(5)}
        reflector.unsubscribe(queue)
        api.add_pod(make_pod("later", node=NODE))
        await wait_for(lambda: len(reflector.pods()) == 6, "later pod")
        assert queue.empty()
    finally:
        await reflector.stop()


async def test_stop_interrupts_an_open_watch(api: FakeApiServer, client: KubeClient) -> None:
    reflector = PodReflector(client, NODE, watch_timeout_seconds=600, read_timeout_seconds=900)
    await reflector.start()
    await wait_for(lambda: api.calls["watch"] == 1, "watch opened")
    await reflector.stop()
    task = reflector._task
    assert task is not None and task.done()


def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(KubeConfigError, match="nope"):
        load_configuration(str(missing))
    garbage = tmp_path / "garbage"
    garbage.write_text("clusters: 3\n")
    with pytest.raises(KubeConfigError):
        load_configuration(str(garbage))


def test_in_cluster_config_is_used_without_a_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("in-cluster-token")
    ca = Path("/etc/ssl/certs/ca-certificates.crt")  # any non-empty PEM bundle will do
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr("kubernetes.config.incluster_config.SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr("kubernetes.config.incluster_config.SERVICE_CERT_FILENAME", str(ca))
    configuration = load_configuration(None)
    assert configuration.host == "https://10.96.0.1:443"
    bearer = configuration.auth_settings()["BearerToken"]
    assert (bearer["key"], bearer["value"]) == ("authorization", "bearer in-cluster-token")


def test_kubeconfig_that_is_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    with pytest.raises(KubeConfigError, match="broken"):
        load_configuration(str(broken))


def test_backoff_grows_with_jitter_and_stays_bounded(client: KubeClient) -> None:
    r = PodReflector(client, NODE, backoff_initial_seconds=0.5, backoff_max_seconds=30)
    delays = [r._backoff(n) for n in (1, 2, 3, 10, 100_000)]
    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1.0
    assert 1.0 <= delays[2] <= 2.0
    assert all(15 <= d <= 30 for d in delays[3:])
    assert len({r._backoff(10) for _ in range(20)}) > 1, "no jitter"


async def test_cache_converges_through_repeated_drops(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    """Many changes interleaved with cut connections: every change arrives exactly once."""
    queue = reflector.subscribe()
    await reflector.start()
    await wait_for(lambda: reflector.synced, "sync")
    expected: list[tuple[str, str]] = []
    for round_ in range(8):
        name = f"p{round_}"
        api.add_pod(make_pod(name, node=NODE))
        api.update_pod(make_pod(name, node=NODE, labels={"round": str(round_)}))
        expected += [("ADDED", name), ("MODIFIED", name)]
        if round_ % 2:
            api.delete_pod("default", f"p{round_ - 1}")
            expected.append(("DELETED", f"p{round_ - 1}"))
        await api.drop_watches()
    got = await next_events(queue, len(expected))
    assert got == expected
    live = {name for kind, name in expected if kind == "ADDED"} - {
        name for kind, name in expected if kind == "DELETED"
    }
    await wait_for(lambda: {p.name for p in reflector.pods()} == live, "cache == server")
    assert api.calls["list"] == 1
    await asyncio.sleep(0.5)
    assert queue.empty(), "an event was delivered twice"


async def test_list_and_watch_send_the_parameters_the_api_concepts_call_for(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    """List from the watch cache (RV 0), then watch from the list's RV with bookmarks and
    a server-side timeout, all scoped to this node."""
    api.add_pod(make_pod("a", node=NODE))
    listed_rv = str(api.resource_version)
    await reflector.start()
    await wait_for(lambda: api.calls["watch"] >= 1, "first watch")
    (list_path, first_list), (watch_path, first_watch) = api.pod_requests[:2]
    assert list_path == watch_path == "/api/v1/pods"
    assert first_list == {"fieldSelector": f"spec.nodeName={NODE}", "resourceVersion": "0"}
    assert first_watch == {
        "fieldSelector": f"spec.nodeName={NODE}",
        "watch": "true",
        "resourceVersion": listed_rv,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }


async def test_rejected_credentials_are_reported_with_the_api_status(
    api: FakeApiServer, client: KubeClient
) -> None:
    api.token = "not-the-token-in-the-kubeconfig"
    reflector = make_reflector(client)
    await reflector.start()
    try:
        await wait_for(lambda: reflector.state == "disconnected", "disconnected state")
        assert reflector.last_error == "API server answered 401 Unauthorized"
        assert not reflector.synced
    finally:
        await reflector.stop()


async def test_get_json_goes_through_the_clients_auth_and_raises_api_errors(
    api: FakeApiServer, client: KubeClient
) -> None:
    api.add_pod(make_pod("web-1", "team-a", node=NODE))
    path = "/api/v1/namespaces/{namespace}/pods/{name}"
    pod = await client.get_json(api_path(path, namespace="team-a", name="web-1"), timeout=5)
    assert (pod["kind"], pod["metadata"]["name"]) == ("Pod", "web-1")
    with pytest.raises(ApiError) as missing:
        await client.get_json(api_path(path, namespace="team-a", name="nope"), timeout=5)
    assert missing.value.status == 404 and missing.value.body
    assert json.loads(missing.value.body)["message"] == 'pods "nope" not found'
    assert missing.value.message == 'pods "nope" not found'


async def test_a_rotated_token_is_asked_for_on_every_request(
    api: FakeApiServer, client: KubeClient
) -> None:
    """The official loaders rotate tokens through the configuration's refresh hook; the
    raw GET path must consult it per request, as the generated methods do."""
    cfg = client.configuration
    assert "BearerToken" in cfg.api_key
    cfg.refresh_api_key_hook = lambda c: c.api_key.__setitem__(  # type: ignore[assignment]
        "BearerToken", f"Bearer {api.token}"
    )
    api.token = "rotated-token"
    body = await client.get_json("/api/v1/pods", timeout=5)
    assert body["kind"] == "PodList"
    assert api.calls["unauthorized"] == 0


async def test_the_reflector_imports_no_generated_api_or_model_module(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """CoreV1Api and its models cost ~21 MiB of RSS; a syncing reflector must not load them."""
    for i in range(3):
        api.add_pod(make_pod(f"p{i}", node=NODE))
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    script = f"""
import asyncio, sys
from exporter.kube.client import KubeClient, load_configuration
from exporter.kube.reflector import PodReflector

async def main():
    kube = KubeClient(load_configuration(sys.argv[1]))
    r = PodReflector(kube, {NODE!r}, watch_timeout_seconds=1)
    await r.start()
    for _ in range(750):
        if len(r.pods()) == 3:
            break
        await asyncio.sleep(0.02)
    await r.stop()
    await kube.aclose()
    prefixes = ("kubernetes.client.api.", "kubernetes.client.models.")
    print(len(r.pods()), sorted(m for m in sys.modules if m.startswith(prefixes)))

asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(kubeconfig),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "3 []"


async def test_a_routine_watch_cut_is_resumed_without_declaring_the_api_down(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    """Load balancers cut watches: the reflector resumes at once and never reports
    "disconnected" (which would flip every response to runtime names) for a cut that a
    reconnect heals."""
    queue = reflector.subscribe()
    api.add_pod(make_pod("a", node=NODE))
    await reflector.start()
    assert await next_events(queue, 1) == [("ADDED", "a")]
    states: set[str] = set()
    for round_ in range(5):
        await wait_for(lambda: api.open_watches == 1, "an open watch to cut")
        watches = api.calls["watch"]
        await api.drop_watches()
        api.add_pod(make_pod(f"after-cut-{round_}", node=NODE))
        while api.calls["watch"] == watches:
            states.add(reflector.state)
            await asyncio.sleep(0.001)
        assert await next_events(queue, 1) == [("ADDED", f"after-cut-{round_}")]
        states.add(reflector.state)
    assert states == {"synced"}
    assert reflector.last_error is None


async def test_watches_cut_before_they_deliver_anything_are_an_outage(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    """The other side of the rule above: a watch that is cut before it delivered an
    event or a bookmark, straight after a resumed one, means the API is not serving."""
    await reflector.start()
    await wait_for(lambda: reflector.synced, "sync")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while reflector.state != "disconnected":
        assert loop.time() < deadline, "cut after cut never declared the API down"
        await api.drop_watches()
        await asyncio.sleep(0.01)
    assert reflector.last_error is not None


async def test_a_deletion_whose_final_object_is_malformed_still_removes_the_pod(
    api: FakeApiServer, reflector: PodReflector
) -> None:
    queue = reflector.subscribe()
    api.add_pod(make_pod("doomed", node=NODE))
    await reflector.start()
    assert await next_events(queue, 1) == [("ADDED", "doomed")]
    bad = make_pod("doomed", node=NODE)
    bad["metadata"]["uid"] = reflector.pods()[0].uid
    bad["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    api.update_pod(bad)  # the MODIFIED object does not convert: the old copy stays
    await wait_for(lambda: reflector.conversion_errors == 1, "skipped update")
    assert [p.name for p in reflector.pods()] == ["doomed"]
    generation = reflector.generation
    api.delete_pod("default", "doomed")
    assert await next_events(queue, 1) == [("DELETED", "doomed")]
    assert reflector.pods() == []
    assert reflector.generation == generation + 1


async def test_quiet_watches_that_time_out_are_not_backed_off(
    client: KubeClient, tmp_path: Path
) -> None:
    """A server that sends no bookmarks closes a quiet watch at timeoutSeconds with no
    event at all: that is health, and the next watch starts at once, not after a
    growing back-off (events would wait that long)."""
    async with FakeApiServer(bookmark_interval=3600) as quiet:
        api_client = KubeClient(load_configuration(str(quiet.write_kubeconfig(tmp_path / "quiet"))))
        reflector = PodReflector(
            api_client,
            NODE,
            watch_timeout_seconds=1,
            read_timeout_seconds=3,
            backoff_initial_seconds=5.0,
            backoff_max_seconds=10.0,
        )
        queue = reflector.subscribe()
        await reflector.start()
        try:
            await wait_for(lambda: quiet.calls["watch"] >= 3, "three quiet watches", 6.0)
            quiet.add_pod(make_pod("late", node=NODE))
            assert await next_events(queue, 1) == [("ADDED", "late")]
        finally:
            await reflector.stop()
            await api_client.aclose()
