"""Authentication and authorization through the (fake) API server's TokenReview and SAR.

The fake speaks the real review protocol (tests/support/apiserver.py); front-proxy tests use
real TLS with certificates minted by openssl, as kube-aggregator presents them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from exporter import wiring
from exporter.lifecycle import Lifecycle
from exporter.security import front_proxy as requestheader
from exporter.security.auth import (
    USER_KEY,
    Decision,
    DecisionCache,
    request_attributes,
)
from exporter.security.front_proxy import ClusterRequestHeader, config_from_configmap
from tests.support.apiserver import FakeApiServer
from tests.support.certs import CertPair, make_ca, make_cert
from tests.support.parts import Parts, settings_for

CM_PATH = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/cpu_usage_rate"


class FakeClock:
    """Monotonic time under the test's control, so cache expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response({"user": request.get(USER_KEY)})


def _app(parts: Parts, clock: FakeClock) -> web.Application:
    app = web.Application(middlewares=[parts.auth_middleware(clock=clock)])
    app.router.add_get("/healthz", _whoami)
    app.router.add_get("/v1/containers", _whoami)
    app.router.add_get("/metrics", _whoami)
    app.router.add_post("/gather_runtime_info", _whoami)
    app.router.add_get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/{name}/{metric}", _whoami
    )
    return app


@dataclass
class Env:
    kube: FakeApiServer
    clock: FakeClock
    url: str
    http: httpx.AsyncClient

    async def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.get(self.url + path, headers=headers)


async def _serve(app: web.Application, ctx: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    (address,) = runner.addresses
    return int(address[1])


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeApiServer() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        parts = Parts(settings_for(auth_enabled=True, kubeconfig=str(kubeconfig)))
        clock = FakeClock()
        runner = await _serve(_app(parts, clock))
        async with httpx.AsyncClient(timeout=10) as http:
            yield Env(kube, clock, f"http://127.0.0.1:{_port(runner)}", http)
        await runner.cleanup()
        await parts.aclose()


def _assert_status(response: httpx.Response, code: int) -> dict[str, object]:
    assert response.status_code == code
    body = response.json()
    assert body["kind"] == "Status" and body["code"] == code and body["status"] == "Failure"
    return dict(body)


async def test_no_token_is_401_without_asking_the_api(env: Env) -> None:
    response = await env.get("/v1/containers")
    _assert_status(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert env.kube.calls["tokenreviews"] == 0


async def test_unknown_token_is_401(env: Env) -> None:
    _assert_status(await env.get("/v1/containers", "not-a-token"), 401)
    assert env.kube.calls["tokenreviews"] == 1
    assert env.kube.calls["subjectaccessreviews"] == 0


async def test_token_without_permission_is_403(env: Env) -> None:
    env.kube.add_token("tok-bob", "bob")
    env.kube.allow("bob", "get", path="/metrics")
    body = _assert_status(await env.get("/v1/containers", "tok-bob"), 403)
    assert '"bob"' in str(body["message"]) and "/v1/containers" in str(body["message"])


async def test_permitted_token_reaches_the_handler_as_its_user(env: Env) -> None:
    env.kube.add_token("tok-alice", "alice", ["readers"])
    env.kube.allow("group:readers", "get", path="/v1/*")
    response = await env.get("/v1/containers", "tok-alice")
    assert response.status_code == 200
    assert response.json() == {"user": "alice"}


async def test_post_is_authorized_as_the_post_verb(env: Env) -> None:
    env.kube.add_token("tok-op", "operator")
    env.kube.allow("operator", "get", path="/gather_runtime_info")
    url = env.url + "/gather_runtime_info"
    headers = {"Authorization": "Bearer tok-op"}
    assert (await env.http.post(url, headers=headers, json={})).status_code == 403
    env.kube.allow("operator", "post", path="/gather_runtime_info")
    env.clock.now += 11  # past the negative TTL
    assert (await env.http.post(url, headers=headers, json={})).status_code == 200


async def test_probes_need_no_credentials(env: Env) -> None:
    assert (await env.get("/healthz")).status_code == 200
    assert env.kube.calls["tokenreviews"] == 0


async def test_allow_decisions_are_cached_until_the_ttl(env: Env) -> None:
    """10 s by default, what k8s.io/apiserver's delegating authorization uses."""
    env.kube.add_token("tok-alice", "alice")
    env.kube.allow("alice", "get", path="/v1/containers")
    for _ in range(3):
        assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    assert env.kube.calls["tokenreviews"] == 1
    assert env.kube.calls["subjectaccessreviews"] == 1

    env.clock.now += 9
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    assert env.kube.calls["subjectaccessreviews"] == 1
    env.clock.now += 2
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    assert env.kube.calls["tokenreviews"] == 2
    assert env.kube.calls["subjectaccessreviews"] == 2


async def test_decisions_are_per_path(env: Env) -> None:
    env.kube.add_token("tok-alice", "alice")
    env.kube.allow("alice", "get", path="/v1/containers")
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    _assert_status(await env.get("/metrics", "tok-alice"), 403)
    assert env.kube.calls["subjectaccessreviews"] == 2


async def test_denials_are_cached_for_the_shorter_ttl(env: Env) -> None:
    for _ in range(3):
        _assert_status(await env.get("/v1/containers", "stolen"), 401)
    assert env.kube.calls["tokenreviews"] == 1
    env.kube.add_token("stolen", "mallory")  # the token becomes valid (e.g. just issued)
    env.clock.now += 9
    _assert_status(await env.get("/v1/containers", "stolen"), 401)
    env.clock.now += 2
    _assert_status(await env.get("/v1/containers", "stolen"), 403)
    assert env.kube.calls["tokenreviews"] == 2


async def test_api_unreachable_fails_closed_with_503_and_is_not_cached(env: Env) -> None:
    env.kube.add_token("tok-alice", "alice")
    env.kube.allow("alice", "get", path="/v1/containers")
    await env.kube.pause()
    response = await env.get("/v1/containers", "tok-alice")
    _assert_status(response, 503)
    assert "Retry-After" in response.headers
    await env.kube.resume()
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200


async def test_rejected_own_credentials_are_503_not_401(tmp_path: Path) -> None:
    async with FakeApiServer() as kube:
        kube.add_token("tok-alice", "alice")
        kubeconfig = tmp_path / "kubeconfig"
        kube.write_kubeconfig(kubeconfig)
        kubeconfig.write_text(kubeconfig.read_text().replace(kube.token, "revoked-sa-token"))
        parts = Parts(settings_for(auth_enabled=True, kubeconfig=str(kubeconfig)))
        runner = await _serve(_app(parts, FakeClock()))
        try:
            async with httpx.AsyncClient() as http:
                response = await http.get(
                    f"http://127.0.0.1:{_port(runner)}/v1/containers",
                    headers={"Authorization": "Bearer tok-alice"},
                )
            body = _assert_status(response, 503)
            assert "401" in str(body["message"])
        finally:
            await runner.cleanup()
            await parts.aclose()


async def test_auth_disabled_adds_no_check(tmp_path: Path) -> None:
    """With authentication off the wiring puts no authentication on the app: a request
    without credentials is served and the API server is never asked."""
    async with FakeApiServer() as kube:
        settings = settings_for(
            auth_enabled=False,
            kubeconfig=str(kube.write_kubeconfig(tmp_path / "k")),
            extractor_socket=str(tmp_path / "none.sock"),
        )
        built = wiring.build(settings, Lifecycle())
        runner = await _serve(built.app)
        try:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{_port(runner)}/v1/containers")
            assert response.status_code == 503  # served: no snapshot yet, but no 401
            assert kube.calls["tokenreviews"] == 0
        finally:
            await runner.cleanup()
            await built.lifecycle.stop()


def test_cache_is_a_bounded_lru() -> None:
    cache = DecisionCache(max_entries=2)
    ok = Decision(200, "allowed", "alice")
    cache.put("a", ok, ttl=10, now=0)
    cache.put("b", ok, ttl=10, now=0)
    assert cache.get("a", now=1) == ok  # "a" is now the most recently used
    cache.put("c", ok, ttl=10, now=1)
    assert len(cache) == 2
    assert cache.get("b", now=2) is None
    assert cache.get("a", now=2) == ok and cache.get("c", now=2) == ok
    assert cache.get("a", now=10) is None


def test_request_attributes_follow_the_api_servers_request_info() -> None:
    assert request_attributes("HEAD", "/metrics") == {
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}
    }
    assert request_attributes("GET", "/apis/custom.metrics.k8s.io/v1beta2") == {
        "nonResourceAttributes": {"path": "/apis/custom.metrics.k8s.io/v1beta2", "verb": "get"}
    }
    path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-1/cpu_usage_rate"
    assert request_attributes("GET", path) == {
        "resourceAttributes": {
            "group": "custom.metrics.k8s.io",
            "version": "v1beta2",
            "namespace": "shop",
            "resource": "pods",
            "name": "web-1",
            "subresource": "cpu_usage_rate",
            "verb": "get",
        }
    }
    listed = request_attributes("GET", CM_PATH.format(ns="shop"))["resourceAttributes"]
    assert listed["verb"] == "list" and "name" not in listed


# -- front proxy (kube-aggregator) over real TLS


@dataclass
class ProxyEnv:
    kube: FakeApiServer
    url: str
    ca: CertPair
    front_proxy: CertPair
    intruder: CertPair
    tmp: Path

    def client(self, cert: CertPair | None) -> httpx.AsyncClient:
        return _tls_client(self.ca, cert)


def _tls_client(serving_ca: CertPair, cert: CertPair | None) -> httpx.AsyncClient:
    """A client trusting the exporter's serving CA, presenting `cert` if given; a new one
    means new TLS connections, so each is verified against the trust in force now."""
    ctx = ssl.create_default_context(cafile=str(serving_ca.cert))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return httpx.AsyncClient(verify=ctx, timeout=10)


@pytest.fixture
async def proxy_env(tmp_path: Path) -> AsyncIterator[ProxyEnv]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    serving_ca = make_ca(tmp_path, "serving-ca")
    server = make_cert(tmp_path, serving_ca, "exporter")
    proxy_ca = make_ca(tmp_path, "front-proxy-ca")
    front_proxy = make_cert(tmp_path, proxy_ca, "front-proxy-client", client=True)
    intruder = make_cert(tmp_path, proxy_ca, "some-other-client", client=True)
    async with FakeApiServer() as kube:
        parts = Parts(
            settings_for(
                auth_enabled=True,
                kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                tls_cert_file=str(server.cert),
                tls_key_file=str(server.key),
                requestheader_client_ca_file=str(proxy_ca.cert),
                requestheader_allowed_names=["front-proxy-client"],
            )
        )
        runner = await _serve(_app(parts, FakeClock()), parts.tls())
        yield ProxyEnv(
            kube, f"https://127.0.0.1:{_port(runner)}", serving_ca, front_proxy, intruder, tmp_path
        )
        await runner.cleanup()
        await parts.aclose()


async def test_front_proxy_user_and_groups_are_authorized(proxy_env: ProxyEnv) -> None:
    proxy_env.kube.allow("group:hpa-readers", "get", path="/v1/containers")
    headers = {"X-Remote-User": "system:serviceaccount:kube-system:hpa", "X-Remote-Group": "x"}
    async with proxy_env.client(proxy_env.front_proxy) as http:
        response = await http.get(proxy_env.url + "/v1/containers", headers=headers)
        _assert_status(response, 403)
        grouped = [*headers.items(), ("X-Remote-Group", "hpa-readers")]
        response = await http.get(proxy_env.url + "/v1/containers", headers=grouped)
        assert response.status_code == 200
        assert response.json() == {"user": "system:serviceaccount:kube-system:hpa"}
    assert proxy_env.kube.calls["tokenreviews"] == 0
    assert proxy_env.kube.calls["configmaps"] == 0  # an explicit CA file wins over the cluster


async def test_front_proxy_custom_metrics_use_resource_attributes(proxy_env: ProxyEnv) -> None:
    proxy_env.kube.allow(
        "hpa", "list", resource="pods", namespace="shop", api_group="custom.metrics.k8s.io"
    )
    async with proxy_env.client(proxy_env.front_proxy) as http:
        headers = {"X-Remote-User": "hpa"}
        ok = await http.get(proxy_env.url + CM_PATH.format(ns="shop"), headers=headers)
        assert ok.status_code == 200
        other = await http.get(proxy_env.url + CM_PATH.format(ns="bank"), headers=headers)
        _assert_status(other, 403)


async def test_front_proxy_cn_not_allowed_is_401(proxy_env: ProxyEnv) -> None:
    proxy_env.kube.allow("admin", "*", path="*")
    async with proxy_env.client(proxy_env.intruder) as http:
        response = await http.get(
            proxy_env.url + "/v1/containers", headers={"X-Remote-User": "admin"}
        )
    body = _assert_status(response, 401)
    assert "some-other-client" in str(body["message"])
    assert proxy_env.kube.calls["subjectaccessreviews"] == 0


async def test_front_proxy_without_user_header_is_401(proxy_env: ProxyEnv) -> None:
    async with proxy_env.client(proxy_env.front_proxy) as http:
        _assert_status(await http.get(proxy_env.url + "/v1/containers"), 401)


async def test_without_certificate_headers_are_ignored_and_tokens_used(
    proxy_env: ProxyEnv,
) -> None:
    proxy_env.kube.allow("admin", "*", path="*")
    proxy_env.kube.add_token("tok-bob", "bob")
    proxy_env.kube.allow("bob", "get", path="/v1/containers")
    async with proxy_env.client(None) as http:
        forged = {"X-Remote-User": "admin"}
        _assert_status(await http.get(proxy_env.url + "/metrics", headers=forged), 401)
        with_token = {**forged, "Authorization": "Bearer tok-bob"}
        response = await http.get(proxy_env.url + "/v1/containers", headers=with_token)
        assert response.status_code == 200
        assert response.json() == {"user": "bob"}
        _assert_status(await http.get(proxy_env.url + "/metrics", headers=with_token), 403)


async def test_client_certificate_from_another_ca_is_refused(proxy_env: ProxyEnv) -> None:
    rogue_ca = make_ca(proxy_env.tmp, "rogue-ca")
    other = make_cert(proxy_env.tmp, rogue_ca, "front-proxy-client", client=True, stem="rogue")
    async with proxy_env.client(other) as http:
        with pytest.raises(httpx.HTTPError):
            await asyncio.wait_for(
                http.get(proxy_env.url + "/v1/containers", headers={"X-Remote-User": "x"}), 10
            )


async def test_concurrent_requests_share_one_review(env: Env) -> None:
    env.kube.add_token("tok-prom", "prometheus")
    env.kube.allow("prometheus", "get", path="/metrics")
    responses = await asyncio.gather(*(env.get("/metrics", "tok-prom") for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert env.kube.calls["tokenreviews"] == 1
    assert env.kube.calls["subjectaccessreviews"] == 1


async def test_tokens_must_carry_a_configured_audience(tmp_path: Path) -> None:
    async with FakeApiServer() as kube:
        kube.add_token("tok-scoped", "prometheus", audiences=["runtime-insights"])
        kube.add_token("tok-api", "prometheus")  # valid for the API server only
        kube.allow("prometheus", "get", path="/metrics")
        parts = Parts(
            settings_for(
                auth_enabled=True,
                kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                auth_token_audiences=["runtime-insights"],
            )
        )
        runner = await _serve(_app(parts, FakeClock()))
        try:
            async with httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{_port(runner)}/metrics"
                scoped = await http.get(url, headers={"Authorization": "Bearer tok-scoped"})
                general = await http.get(url, headers={"Authorization": "Bearer tok-api"})
            assert scoped.status_code == 200
            _assert_status(general, 401)
        finally:
            await runner.cleanup()
            await parts.aclose()


# -- front-proxy trust from ConfigMap kube-system/extension-apiserver-authentication

AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")


def _authentication_data(
    front_proxy_ca: CertPair,
    client_ca: CertPair,
    *,
    allowed_names: Sequence[str] = ("front-proxy-client",),
    username_headers: Sequence[str] = ("X-Remote-User",),
    group_headers: Sequence[str] = ("X-Remote-Group",),
    extra_prefixes: Sequence[str] = ("X-Remote-Extra-",),
    uid_headers: Sequence[str] | None = None,
) -> dict[str, str]:
    """The ConfigMap data kube-apiserver writes: PEM bundles and JSON lists."""
    data = {
        "client-ca-file": client_ca.cert.read_text(),
        "requestheader-client-ca-file": front_proxy_ca.cert.read_text(),
        "requestheader-allowed-names": json.dumps(list(allowed_names)),
        "requestheader-username-headers": json.dumps(list(username_headers)),
        "requestheader-group-headers": json.dumps(list(group_headers)),
        "requestheader-extra-headers-prefix": json.dumps(list(extra_prefixes)),
    }
    if uid_headers is not None:
        data["requestheader-uid-headers"] = json.dumps(list(uid_headers))
    return data


@dataclass(frozen=True)
class ClusterPki:
    tmp: Path
    serving_ca: CertPair
    server: CertPair
    front_proxy_ca: CertPair
    front_proxy: CertPair  # CN front-proxy-client, signed by front_proxy_ca
    client_ca: CertPair  # the cluster's user CA: in the same ConfigMap, never a front proxy

    def data(self, **overrides: Any) -> dict[str, str]:
        return _authentication_data(self.front_proxy_ca, self.client_ca, **overrides)


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPki:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    serving_ca = make_ca(tmp_path, "serving-ca")
    front_proxy_ca = make_ca(tmp_path, "front-proxy-ca")
    return ClusterPki(
        tmp_path,
        serving_ca,
        make_cert(tmp_path, serving_ca, "exporter"),
        front_proxy_ca,
        make_cert(tmp_path, front_proxy_ca, "front-proxy-client", client=True),
        make_ca(tmp_path, "kubernetes-ca"),
    )


@dataclass
class ClusterEnv:
    kube: FakeApiServer
    url: str
    pki: ClusterPki
    source: ClusterRequestHeader

    async def get(
        self, cert: CertPair | None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One request on a new TLS connection presenting `cert`."""
        async with _tls_client(self.pki.serving_ca, cert) as http:
            return await http.get(self.url + "/v1/containers", headers=dict(headers or {}))

    async def refused(self, cert: CertPair) -> bool:
        """Whether a new connection presenting `cert` fails TLS (with TLS 1.3 the server
        rejects the certificate after the handshake: the request then gets no answer)."""
        try:
            await asyncio.wait_for(self.get(cert, {"X-Remote-User": "hpa"}), 10)
        except httpx.TransportError:
            return True
        return False


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _cluster_exporter(
    kube: FakeApiServer, pki: ClusterPki, *, loaded: bool = True
) -> AsyncIterator[ClusterEnv]:
    """An exporter as the manifests deploy it: TLS, auth on, no CA file — so its front-proxy
    trust comes from the ConfigMap; `loaded` waits for the first read to succeed."""
    parts = Parts(
        settings_for(
            auth_enabled=True,
            kubeconfig=str(kube.write_kubeconfig(pki.tmp / "kubeconfig")),
            tls_cert_file=str(pki.server.cert),
            tls_key_file=str(pki.server.key),
        )
    )
    ctx = parts.tls()
    assert ctx is not None and isinstance(ctx.front_proxy, ClusterRequestHeader)
    source = ctx.front_proxy
    runner = await _serve(_app(parts, FakeClock()), ctx)
    try:
        if loaded:
            await _until(lambda: source.current() is not None)
        yield ClusterEnv(kube, f"https://127.0.0.1:{_port(runner)}", pki, source)
    finally:
        await runner.cleanup()
        await parts.aclose()


@pytest.fixture
async def kube() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        yield server


async def test_configmap_ca_is_trusted_and_no_other(kube: FakeApiServer, pki: ClusterPki) -> None:
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    kube.allow("hpa", "get", path="/v1/containers")
    as_cluster_user = make_cert(
        pki.tmp, pki.client_ca, "front-proxy-client", client=True, stem="by-client-ca"
    )
    rogue_ca = make_ca(pki.tmp, "rogue-ca")
    rogue = make_cert(pki.tmp, rogue_ca, "front-proxy-client", client=True, stem="by-rogue-ca")
    async with _cluster_exporter(kube, pki) as env:
        response = await env.get(pki.front_proxy, {"X-Remote-User": "hpa"})
        assert response.status_code == 200
        assert response.json() == {"user": "hpa"}
        # The ConfigMap's client-ca-file signs users' certificates, not the front proxy's.
        assert await env.refused(as_cluster_user)
        assert await env.refused(rogue)
        _assert_status(await env.get(None, {"X-Remote-User": "hpa"}), 401)  # headers need a cert
    assert kube.calls["configmaps"] >= 1
    assert [r["user"] for r in kube.access_reviews] == ["hpa"]


async def test_header_names_come_from_the_configmap(kube: FakeApiServer, pki: ClusterPki) -> None:
    kube.set_configmap(
        *AUTH_CONFIGMAP,
        pki.data(
            username_headers=["X-Aggregated-User"],
            group_headers=["X-Aggregated-Group"],
            extra_prefixes=["X-Aggregated-Extra-"],
            uid_headers=["X-Aggregated-Uid"],
        ),
    )
    kube.allow("group:hpa-readers", "get", path="/v1/containers")
    async with _cluster_exporter(kube, pki) as env:
        standard = {"X-Remote-User": "hpa", "X-Remote-Group": "hpa-readers"}
        body = _assert_status(await env.get(pki.front_proxy, standard), 401)
        assert "X-Aggregated-User" in str(body["message"])
        mixed = {"X-Aggregated-User": "hpa", "X-Remote-Group": "hpa-readers"}
        _assert_status(await env.get(pki.front_proxy, mixed), 403)
        custom = {
            "X-Aggregated-User": "hpa",
            "X-Aggregated-Group": "hpa-readers",
            "X-Aggregated-Uid": "uid-1234",
            "X-Remote-Uid": "forged",
            "X-Aggregated-Extra-Scopes": "metrics",
            "X-Aggregated-Extra-Acme.io%2fteam": "platform",
            "X-Remote-Extra-Ignored": "x",
        }
        response = await env.get(pki.front_proxy, custom)
        assert response.status_code == 200 and response.json() == {"user": "hpa"}
    granted = kube.access_reviews[-1]
    assert (granted["user"], granted["groups"], granted["uid"]) == (
        "hpa",
        ["hpa-readers"],
        "uid-1234",
    )
    assert granted["extra"] == {"scopes": ["metrics"], "acme.io/team": ["platform"]}


async def test_cn_outside_the_allowed_names_is_refused(
    kube: FakeApiServer, pki: ClusterPki
) -> None:
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    kube.allow("hpa", "get", path="/v1/containers")
    other = make_cert(pki.tmp, pki.front_proxy_ca, "some-other-client", client=True)
    async with _cluster_exporter(kube, pki) as env:
        body = _assert_status(await env.get(other, {"X-Remote-User": "hpa"}), 401)
        assert '"some-other-client"' in str(body["message"])
        assert "extension-apiserver-authentication" in str(body["message"])
        assert kube.calls["subjectaccessreviews"] == 0
        # An empty requestheader-allowed-names admits any CN the CA signed, as upstream.
        kube.set_configmap(*AUTH_CONFIGMAP, pki.data(allowed_names=[]))
        assert await env.source.refresh()
        assert (await env.get(other, {"X-Remote-User": "hpa"})).status_code == 200


async def test_rotated_ca_is_picked_up_by_the_periodic_refresh(
    kube: FakeApiServer,
    pki: ClusterPki,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.security.front_proxy")
    monkeypatch.setattr(requestheader, "REFRESH_SECONDS", 0.2)  # a minute in production
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    kube.allow("hpa", "get", path="/v1/containers")
    new_ca = make_ca(pki.tmp, "front-proxy-ca-2")
    new_client = make_cert(pki.tmp, new_ca, "front-proxy-client", client=True, stem="rotated")
    async with _cluster_exporter(kube, pki) as env:
        first = env.source.current()
        assert (await env.get(pki.front_proxy, {"X-Remote-User": "hpa"})).status_code == 200
        assert await env.refused(new_client)
        rotated = _authentication_data(new_ca, pki.client_ca)  # the old CA is dropped
        kube.set_configmap(*AUTH_CONFIGMAP, rotated)
        await _until(lambda: env.source.current() != first)  # the refresh thread, unprompted
        assert (await env.get(new_client, {"X-Remote-User": "hpa"})).status_code == 200
        assert await env.refused(pki.front_proxy)
    loaded = [r.getMessage() for r in caplog.records if "front-proxy trust from" in r.getMessage()]
    assert len(loaded) == 2 and all("1 CA certificate(s)" in m for m in loaded)


async def test_the_last_good_copy_outlives_an_outage_and_a_bad_configmap(
    kube: FakeApiServer, pki: ClusterPki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.security.front_proxy")
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    kube.allow("hpa", "get", path="/v1/containers")
    async with _cluster_exporter(kube, pki) as env:
        assert (await env.get(pki.front_proxy, {"X-Remote-User": "hpa"})).status_code == 200
        good = env.source.current()

        await kube.pause()
        assert not await env.source.refresh()
        assert env.source.current() is good
        # A new connection is still verified with the kept CA; the allow is cached.
        assert (await env.get(pki.front_proxy, {"X-Remote-User": "hpa"})).status_code == 200
        await kube.resume()

        broken = {**pki.data(), "requestheader-allowed-names": "front-proxy-client"}
        kube.set_configmap(*AUTH_CONFIGMAP, broken)
        assert not await env.source.refresh()
        assert env.source.current() is good
        assert (await env.get(pki.front_proxy, {"X-Remote-User": "hpa"})).status_code == 200

        kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
        assert await env.source.refresh()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "cannot reach the API server" in m and "keeping the copy read at" in m for m in warnings
    )
    assert any("requestheader-allowed-names is not JSON" in m for m in warnings)
    assert any("readable again" in r.getMessage() for r in caplog.records)


async def test_unreadable_configmap_refuses_certificates_but_not_tokens(
    kube: FakeApiServer, pki: ClusterPki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.security.front_proxy")
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    kube.forbid("configmaps")  # no RoleBinding to extension-apiserver-authentication-reader
    kube.add_token("tok-prom", "prometheus")
    kube.allow("prometheus", "get", path="/v1/containers")
    async with _cluster_exporter(kube, pki, loaded=False) as env:
        await _until(lambda: kube.calls["forbidden"] >= 1)
        assert env.source.current() is None
        assert await env.refused(pki.front_proxy)
        response = await env.get(None, {"Authorization": "Bearer tok-prom"})
        assert response.status_code == 200 and response.json() == {"user": "prometheus"}
    (warning, *_) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "HTTP 403" in warning and "no copy yet" in warning
    assert "Role extension-apiserver-authentication-reader in kube-system" in warning
    assert "RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE" in warning


async def test_the_front_proxy_refresh_starts_and_stops_with_the_exporter(
    kube: FakeApiServer, pki: ClusterPki
) -> None:
    """The wiring puts the ConfigMap refresh on the exporter's one start/stop list: it
    reads once started, and no task of it is left once the exporter stopped."""
    kube.set_configmap(*AUTH_CONFIGMAP, pki.data())
    settings = settings_for(
        auth_enabled=True,
        kubeconfig=str(kube.write_kubeconfig(pki.tmp / "kubeconfig")),
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        port=0,
        host="127.0.0.1",
        extractor_socket=str(pki.tmp / "none.sock"),
    )
    built = wiring.build(settings, Lifecycle())
    assert "front-proxy trust" in built.lifecycle.names
    assert built.tls is not None and isinstance(built.tls.front_proxy, ClusterRequestHeader)
    source = built.tls.front_proxy
    try:
        await built.lifecycle.start()
        await _until(lambda: source.current() is not None)
    finally:
        await built.lifecycle.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "front-proxy-trust"]


def test_configmap_data_is_read_as_kube_apiserver_writes_it(pki: ClusterPki) -> None:
    data = pki.data(uid_headers=["X-Remote-Uid"], allowed_names=["front-proxy-client", "aggr"])
    config = config_from_configmap(data)
    assert config is not None
    assert config.ca_pem == pki.front_proxy_ca.cert.read_text()
    assert config.allowed_names == {"front-proxy-client", "aggr"}
    assert (config.username_headers, config.uid_headers) == (("X-Remote-User",), ("X-Remote-Uid",))
    assert config.group_headers == ("X-Remote-Group",)
    assert config.extra_prefixes == ("X-Remote-Extra-",)
    # Without requestheader-uid-headers no UID header is trusted (kube-apiserver < 1.32).
    assert config_from_configmap(pki.data()) == dataclasses.replace(
        config, uid_headers=(), allowed_names=frozenset({"front-proxy-client"})
    )
    # No front-proxy CA published: nothing to trust (an answer, not an error).
    assert config_from_configmap({"client-ca-file": data["client-ca-file"]}) is None
    for key, value in (
        ("requestheader-allowed-names", '"front-proxy-client"'),
        ("requestheader-group-headers", "[1]"),
        ("requestheader-client-ca-file", "not a certificate"),
    ):
        with pytest.raises(ValueError, match=key):
            config_from_configmap({**data, key: value})


async def test_an_api_outage_keeps_recent_callers_allowed_for_the_grace_only(env: Env) -> None:
    """A scraper allowed before the API server went away keeps scraping for
    auth_outage_grace_seconds (300 s) past its decision's expiry; a caller never seen,
    and a caller denied before, still fail closed; after the grace, everyone does."""
    env.kube.add_token("tok-alice", "alice")
    env.kube.allow("alice", "get", path="/v1/containers")
    env.kube.add_token("tok-bob", "bob")
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    _assert_status(await env.get("/v1/containers", "tok-bob"), 403)
    await env.kube.pause()
    env.clock.now += 11 + 250  # the allow decision expired 251 s ago
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    _assert_status(await env.get("/metrics", "tok-alice"), 503)  # never decided for this path
    _assert_status(await env.get("/v1/containers", "tok-bob"), 503)
    _assert_status(await env.get("/v1/containers", "tok-carol"), 503)
    env.clock.now += 60
    _assert_status(await env.get("/v1/containers", "tok-alice"), 503)
    await env.kube.resume()
    assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
