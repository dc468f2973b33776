"""Authentication and authorization through the (fake) API server's TokenReview and SAR.

The fake speaks the real review protocol (tests/fakes/apiserver.py); front-proxy tests use
real TLS with certificates minted by openssl, as kube-aggregator presents them.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from exporter.auth import (
    USER_KEY,
    AuthApi,
    Decision,
    DecisionCache,
    auth_middleware,
    request_attributes,
)
from exporter.settings import Settings
from exporter.tls import ssl_context
from tests.fakes.apiserver import FakeApiServer
from tests.unit.tlscerts import CertPair, make_ca, make_cert

CM_PATH = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/cpu_usage_rate"


class FakeClock:
    """Monotonic time under the test's control, so cache expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response({"user": request.get(USER_KEY)})


def _app(settings: Settings, api: AuthApi, clock: FakeClock) -> web.Application:
    app = web.Application(middlewares=[auth_middleware(settings, api, clock=clock)])
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
        settings = Settings(
            auth_enabled=True,
            kubeconfig=str(kubeconfig),
            auth_cache_ttl_seconds=60,
            auth_cache_negative_ttl_seconds=10,
        )
        api = AuthApi.from_settings(settings)
        clock = FakeClock()
        runner = await _serve(_app(settings, api, clock))
        async with httpx.AsyncClient(timeout=10) as http:
            yield Env(kube, clock, f"http://127.0.0.1:{_port(runner)}", http)
        await runner.cleanup()
        await api.aclose()


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
    env.kube.add_token("tok-alice", "alice")
    env.kube.allow("alice", "get", path="/v1/containers")
    for _ in range(3):
        assert (await env.get("/v1/containers", "tok-alice")).status_code == 200
    assert env.kube.calls["tokenreviews"] == 1
    assert env.kube.calls["subjectaccessreviews"] == 1

    env.clock.now += 59
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
        settings = Settings(auth_enabled=True, kubeconfig=str(kubeconfig))
        api = AuthApi.from_settings(settings)
        runner = await _serve(_app(settings, api, FakeClock()))
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
            await api.aclose()


async def test_auth_disabled_is_a_pass_through(tmp_path: Path) -> None:
    async with FakeApiServer() as kube:
        settings = Settings(
            auth_enabled=False, kubeconfig=str(kube.write_kubeconfig(tmp_path / "k"))
        )
        api = AuthApi.from_settings(settings)
        runner = await _serve(_app(settings, api, FakeClock()))
        try:
            async with httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{_port(runner)}/v1/containers"
                response = await http.get(url)
            assert response.status_code == 200
            assert kube.calls["tokenreviews"] == 0
        finally:
            await runner.cleanup()
            await api.aclose()


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
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
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
        settings = Settings(
            auth_enabled=True,
            kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            tls_cert_file=str(server.cert),
            tls_key_file=str(server.key),
            requestheader_client_ca_file=str(proxy_ca.cert),
            requestheader_allowed_names=["front-proxy-client"],
        )
        api = AuthApi.from_settings(settings)
        runner = await _serve(_app(settings, api, FakeClock()), ssl_context(settings))
        yield ProxyEnv(
            kube, f"https://127.0.0.1:{_port(runner)}", serving_ca, front_proxy, intruder, tmp_path
        )
        await runner.cleanup()
        await api.aclose()


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
    other = make_cert(proxy_env.tmp, make_ca(proxy_env.tmp, "rogue-ca"), "front-proxy-client")
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
        settings = Settings(
            auth_enabled=True,
            kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            auth_token_audiences=["runtime-insights"],
        )
        api = AuthApi.from_settings(settings)
        runner = await _serve(_app(settings, api, FakeClock()))
        try:
            async with httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{_port(runner)}/metrics"
                scoped = await http.get(url, headers={"Authorization": "Bearer tok-scoped"})
                general = await http.get(url, headers={"Authorization": "Bearer tok-api"})
            assert scoped.status_code == 200
            _assert_status(general, 401)
        finally:
            await runner.cleanup()
            await api.aclose()
