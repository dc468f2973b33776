"""The port-forward tunnel: the fake API server's kubelet framing, and what
`exporter.kube.portforward` makes of refusals, broken tunnels and misbehaving pods.

The framing expectations are kubelet's `pkg/kubelet/cri/streaming/portforward/websocket.go`
(data channel 2i, error channel 2i+1, each opened by the port as uint16 little-endian) and
the official Python client's `kubernetes/stream/ws_client.py`, which refuses anything else.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import kubernetes.client
import pytest

from exporter.kube.client import load_configuration
from exporter.kube.portforward import Answer, TlsTarget, TunnelError, get_through_portforward
from tests.support.apiserver import FakeApiServer, make_pod
from tests.support.certs import make_ca

NS = "pf-test"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


def _canned(answer: bytes) -> Serve:
    """A pod port that answers `answer` to the first bytes it gets, then hangs up."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(answer)
        await writer.drain()
        writer.close()

    return serve


class Pods:
    """Pods of the fake API server whose port 8443 is a local TCP server."""

    def __init__(self, kube: FakeApiServer, tmp: Path) -> None:
        self.kube = kube
        self.kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
        self.servers: list[asyncio.Server] = []

    async def pod(self, name: str, serve: Serve, port: int = 8443) -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.servers.append(server)
        self.kube.add_pod(make_pod(name, NS))
        self.kube.set_pod_portforward(
            NS, name, port, "127.0.0.1", server.sockets[0].getsockname()[1]
        )

    async def get(
        self, pod: str, *, tls: TlsTarget | None = None, max_bytes: int = 1 << 20
    ) -> Answer:
        """The real blocking call, in a thread (the fake serves on this loop)."""
        api = kubernetes.client.ApiClient(load_configuration(str(self.kubeconfig)))

        def call() -> Answer:
            with api:
                return get_through_portforward(
                    api, NS, pod, 8443, "/v1/pods", authorization="Bearer t", tls=tls,
                    timeout=5, max_bytes=max_bytes,
                )  # fmt: skip

        return await asyncio.to_thread(call)


@pytest.fixture
async def pods(tmp_path: Path) -> AsyncIterator[Pods]:
    async with FakeApiServer() as kube:
        p = Pods(kube, tmp_path)
        yield p
        for server in p.servers:
            server.close()


async def test_fake_port_forward_frames_like_kubelet(pods: Pods) -> None:
    await pods.pod("echo", _echo)
    url = f"{pods.kube.url}/api/v1/namespaces/{NS}/pods/echo/portforward?ports=8443"
    auth = {"Authorization": f"Bearer {pods.kube.token}"}
    async with aiohttp.ClientSession() as http:
        offered = ("v5.channel.k8s.io", "v4.channel.k8s.io")  # as the official client offers
        async with http.ws_connect(url, headers=auth, protocols=offered) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            port = (8443).to_bytes(2, "little")
            assert await ws.receive_bytes(timeout=5) == b"\x00" + port
            assert await ws.receive_bytes(timeout=5) == b"\x01" + port
            await ws.send_bytes(b"\x00ping")
            assert await ws.receive_bytes(timeout=5) == b"\x00ping"

        plain = await http.get(url, headers=auth)
        assert plain.status == 400 and (await plain.json())["message"] == "Upgrade request required"
        assert (await http.get(url)).status == 401
        missing = await http.get(url.replace("/echo/", "/nope/"), headers=auth)
        assert missing.status == 404
    assert pods.kube.calls["portforward"] == 3  # the 401 is counted as unauthorized instead


async def test_answers_are_read_and_capped(pods: Pods) -> None:
    body = b'{"pods": []}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    await pods.pod("ok", _canned(head + b"Content-Length: %d\r\n\r\n" % len(body) + body))
    await pods.pod("big", _canned(head + b"Content-Length: 100\r\n\r\n" + b"x" * 100))
    await pods.pod(
        "chunky", _canned(head + b"Transfer-Encoding: chunked\r\n\r\n40\r\n" + b"y" * 64)
    )

    assert await pods.get("ok") == Answer(200, body)
    with pytest.raises(TunnelError, match="response larger than 10 bytes"):
        await pods.get("big", max_bytes=10)
    with pytest.raises(TunnelError, match="response larger than 10 bytes"):
        await pods.get("chunky", max_bytes=10)


async def test_refusals_and_misbehaving_pods_are_tunnel_errors(pods: Pods, tmp_path: Path) -> None:
    await pods.pod("garbage", _canned(b"SSH-2.0-OpenSSH_9.2\r\n"))
    await pods.pod("plain", _canned(b"HTTP/1.1 400 Bad Request\r\n\r\n"))

    with pytest.raises(
        TunnelError, match=r'^port-forward refused: HTTP 404: pods "nope" not found$'
    ):
        await pods.get("nope")
    with pytest.raises(TunnelError, match=r"^tunnel to garbage:8443 broke: BadStatusLine"):
        await pods.get("garbage")
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    ca = make_ca(tmp_path, "pf-ca")
    with pytest.raises(TunnelError, match=r"SSLError.*pass --insecure-http\)$"):
        await pods.get("plain", tls=TlsTarget.load(str(ca.cert), "localhost"))
    with pytest.raises(TunnelError, match="cannot load the CA file"):
        TlsTarget.load(str(tmp_path / "absent.crt"), "localhost")
