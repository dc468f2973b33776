"""The fake API server speaks the protocol the real one does (others' tests rely on it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.apiserver import FakeApiServer, make_node, make_pod


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.2) as server:
        yield server


def _client(api: FakeApiServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=5
    )


async def _watch_lines(api: FakeApiServer, **params: str) -> list[dict[str, Any]]:
    async with (
        _client(api) as client,
        client.stream("GET", "/api/v1/pods", params={"watch": "true", **params}) as resp,
    ):
        assert resp.status_code == 200
        return [json.loads(line) async for line in resp.aiter_lines() if line]


async def test_requests_without_the_token_are_401(api: FakeApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        resp = await client.get("/api/v1/pods")
    assert resp.status_code == 401
    assert resp.json()["kind"] == "Status"
    assert api.calls["unauthorized"] == 1


async def test_list_filters_by_node_and_labels_and_pages(api: FakeApiServer) -> None:
    for i in range(5):
        api.add_pod(make_pod(f"p{i}", node="n1" if i < 4 else "n2", labels={"tier": str(i % 2)}))
    async with _client(api) as client:
        on_n1 = await client.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n1"})
        tier1 = await client.get(
            "/api/v1/namespaces/default/pods",
            params={"fieldSelector": "spec.nodeName=n1", "labelSelector": "tier in (1)"},
        )
        page1 = (await client.get("/api/v1/pods", params={"limit": "3"})).json()
        page2 = (
            await client.get(
                "/api/v1/pods", params={"limit": "3", "continue": page1["metadata"]["continue"]}
            )
        ).json()
        bad = await client.get("/api/v1/pods", params={"fieldSelector": "spec.bogus=x"})
    body = on_n1.json()
    assert body["kind"] == "PodList"
    assert body["metadata"]["resourceVersion"] == str(api.resource_version)
    assert sorted(p["metadata"]["name"] for p in body["items"]) == ["p0", "p1", "p2", "p3"]
    assert sorted(p["metadata"]["name"] for p in tier1.json()["items"]) == ["p1", "p3"]
    names = [p["metadata"]["name"] for p in page1["items"] + page2["items"]]
    assert sorted(names) == [f"p{i}" for i in range(5)]
    assert "continue" not in page2["metadata"]
    assert bad.status_code == 400


async def test_watch_resumes_after_a_resource_version_and_follows_selectors(
    api: FakeApiServer,
) -> None:
    pod = api.add_pod(make_pod("a", node="n1"))
    start = api.resource_version
    api.add_pod(make_pod("b", node="n1"))
    moved = dict(pod, spec=dict(pod["spec"], nodeName="n2"))
    api.update_pod(moved)
    api.delete_pod("default", "b")
    events = await _watch_lines(
        api, resourceVersion=str(start), fieldSelector="spec.nodeName=n1", timeoutSeconds="1"
    )
    kinds = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert kinds == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > start


async def test_watch_sends_bookmarks_and_honours_timeout(api: FakeApiServer) -> None:
    api.add_pod(make_pod("a"))
    events = await _watch_lines(
        api,
        resourceVersion=str(api.resource_version),
        allowWatchBookmarks="true",
        timeoutSeconds="1",
    )
    assert events, "expected bookmarks within the 1 s watch"
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert events[-1]["object"]["metadata"]["resourceVersion"] == str(api.resource_version)


async def test_watch_without_resource_version_starts_with_current_state(
    api: FakeApiServer,
) -> None:
    api.add_pod(make_pod("a"))
    events = await _watch_lines(api, timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


async def test_expired_resource_version_gets_410(api: FakeApiServer) -> None:
    api.add_pod(make_pod("a"))
    old = api.resource_version
    api.delete_pod("default", "a")
    api.compact()
    events = await _watch_lines(api, resourceVersion=str(old), timeoutSeconds="5")
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410


async def test_dropped_watch_ends_without_a_clean_end_of_stream(api: FakeApiServer) -> None:
    async with (
        _client(api) as client,
        client.stream("GET", "/api/v1/pods", params={"watch": "1", "resourceVersion": "0"}) as resp,
    ):
        await api.drop_watches()
        with pytest.raises(httpx.RemoteProtocolError):
            await resp.aread()


async def test_token_and_access_reviews(api: FakeApiServer) -> None:
    api.add_token("alice-token", "alice", ["team-a"])
    api.allow("alice", "get", path="/metrics")
    api.allow("group:team-a", "list", resource="pods", namespace="default")

    def sar(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }

    async with _client(api) as client:
        good = await client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json={"kind": "TokenReview", "spec": {"token": "alice-token"}},
        )
        wrong = await client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json={"kind": "TokenReview", "spec": {"token": "nope"}},
        )
        user = good.json()["status"]["user"]
        path_ok = await client.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json=sar(
                {"user": "alice", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
            ),
        )
        path_no = await client.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json=sar({"user": "alice", "nonResourceAttributes": {"path": "/other", "verb": "get"}}),
        )
        by_group = await client.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json=sar(
                {
                    "user": "bob",
                    "groups": user["groups"],
                    "resourceAttributes": {
                        "verb": "list",
                        "resource": "pods",
                        "namespace": "default",
                    },
                }
            ),
        )
    assert good.json()["status"]["authenticated"] is True
    assert user["username"] == "alice"
    assert "team-a" in user["groups"]
    assert "authenticated" not in wrong.json()["status"]
    assert path_ok.json()["status"]["allowed"] is True
    assert path_no.json()["status"]["allowed"] is False
    assert by_group.json()["status"]["allowed"] is True
    assert api.calls["tokenreviews"] == 2
    assert api.calls["subjectaccessreviews"] == 3
    assert [r["user"] for r in api.access_reviews] == ["alice", "alice", "bob"]
    assert api.access_reviews[2]["groups"] == user["groups"]


async def test_pod_proxy_forwards_to_the_registered_backend(api: FakeApiServer) -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response({"path": request.path, "q": request.query_string, "body": body})

    backend = web.Application()
    backend.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(backend)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.add_pod(make_pod("web", "shop"))
    try:
        async with _client(api) as client:
            missing = await client.get("/api/v1/namespaces/shop/pods/web:8080/proxy/x")
            api.set_pod_backend("shop", "web", f"http://127.0.0.1:{port}")
            resp = await client.post(
                "/api/v1/namespaces/shop/pods/https:web:8443/proxy/gather",
                params={"a": "1"},
                content=b'{"k": 1}',
            )
    finally:
        await runner.cleanup()
    assert missing.status_code == 503
    assert resp.json() == {"path": "/gather", "q": "a=1", "body": '{"k": 1}'}
    assert api.proxy_requests[-1] == ("POST", "shop", "web", "https", "8443", "/gather", "a=1")


async def test_configmaps_are_read_by_namespace_and_name(api: FakeApiServer) -> None:
    first = api.set_configmap("kube-system", "cfg", {"key": "one"})
    replaced = api.set_configmap("kube-system", "cfg", {"key": "two"})
    path = "/api/v1/namespaces/kube-system/configmaps/cfg"
    async with _client(api) as client:
        found = (await client.get(path)).json()
        elsewhere = await client.get("/api/v1/namespaces/default/configmaps/cfg")
        api.delete_configmap("kube-system", "cfg")
        gone = await client.get(path)
        api.set_configmap("kube-system", "cfg", {})
        api.forbid("configmaps")
        denied = await client.get(path)
    assert (found["kind"], found["apiVersion"], found["data"]) == (
        "ConfigMap",
        "v1",
        {"key": "two"},
    )
    assert found["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert elsewhere.status_code == 404 and gone.status_code == 404
    assert gone.json()["reason"] == "NotFound"
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        'configmaps "cfg" is forbidden: User "fake" cannot get resource "configmaps" '
        'in API group "" in the namespace "kube-system"'
    )
    assert api.calls["configmaps"] == 4 and api.calls["forbidden"] == 1


async def test_nodes_list_filters_by_labels_and_fields(api: FakeApiServer) -> None:
    api.add_node(make_node("n1"))
    api.add_node(make_node("n2", unschedulable=True))
    api.add_node(make_node("w1", os="windows", labels={"pool": "win"}))
    async with _client(api) as client:
        everything = (await client.get("/api/v1/nodes")).json()
        linux = await client.get(
            "/api/v1/nodes", params={"labelSelector": "kubernetes.io/os=linux"}
        )
        schedulable = await client.get(
            "/api/v1/nodes", params={"fieldSelector": "spec.unschedulable=false"}
        )
        cordoned = await client.get(
            "/api/v1/nodes", params={"fieldSelector": "spec.unschedulable==true"}
        )
        bad = await client.get("/api/v1/nodes", params={"fieldSelector": "spec.nodeName=n1"})
        api.delete_node("n1")
        after = (await client.get("/api/v1/nodes")).json()
        api.forbid("nodes")
        denied = await client.get("/api/v1/nodes")

    def names(response: httpx.Response) -> list[str]:
        return [n["metadata"]["name"] for n in response.json()["items"]]

    assert everything["kind"] == "NodeList"
    assert everything["metadata"]["resourceVersion"] == str(api.resource_version)
    assert [n["metadata"]["name"] for n in everything["items"]] == ["n1", "n2", "w1"]
    assert everything["items"][2]["status"]["nodeInfo"]["operatingSystem"] == "windows"
    assert names(linux) == ["n1", "n2"]
    assert names(schedulable) == ["n1", "w1"] and names(cordoned) == ["n2"]
    assert bad.status_code == 400
    assert [n["metadata"]["name"] for n in after["items"]] == ["n2", "w1"]
    assert denied.status_code == 403
    assert 'cannot list resource "nodes"' in denied.json()["message"]
    assert "at the cluster scope" in denied.json()["message"]
