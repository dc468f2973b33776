"""The exporter's TLS context serves rotated certificate files without a restart.

Rotation is done the two ways it happens in clusters: the kubelet's atomic `..data`
symlink swap of a Secret volume (cert-manager, OpenShift service-ca), and an in-place
rewrite of the files. The truth compared against is the certificate file itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from exporter.security.tls import ServerContext
from exporter.settings import Settings
from exporter.wiring import StartupError, front_proxy, server_tls
from tests.support.certs import CertPair, make_ca, make_cert
from tests.support.parts import Parts, settings_for


def ssl_context(settings: Settings) -> ServerContext | None:
    """The serving context as the wiring builds it, for settings that need no API server."""
    return server_tls(settings, front_proxy(settings, None))


pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _der(cert_file: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_file.read_text())


async def _hello(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _serve(ctx: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    return runner, server.sockets[0].getsockname()[1]


def _client_context(client: CertPair | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


async def _exchange(port: int, client: CertPair | None = None) -> tuple[bytes, bytes]:
    """One HTTP request on a fresh TLS connection: (response bytes, server certificate DER)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context(client))
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        response = await reader.read()
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return response, der
    finally:
        writer.close()


async def _served_cert(port: int, client: CertPair | None = None) -> bytes:
    """The certificate a fresh connection gets, after a successful HTTP exchange on it."""
    response, der = await _exchange(port, client)
    assert response.startswith(b"HTTP/1.1 200")
    return der


@pytest.fixture
def ca(tmp_path: Path) -> CertPair:
    return make_ca(tmp_path, "rotation-ca")


def _secret_volume(root: Path, version: str, pair: CertPair) -> None:
    """Lay out files as the kubelet does: tls.crt -> ..data/tls.crt, ..data -> version dir."""
    data = root / version
    data.mkdir()
    shutil.copy(pair.cert, data / "tls.crt")
    shutil.copy(pair.key, data / "tls.key")
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(version)
    os.replace(tmp_link, root / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


@pytest.fixture
async def volume_server(tmp_path: Path, ca: CertPair) -> AsyncIterator[tuple[Path, int]]:
    volume = tmp_path / "secret"
    volume.mkdir()
    _secret_volume(volume, "..v1", make_cert(tmp_path, ca, "exporter", stem="v1"))
    settings = settings_for(
        tls_cert_file=str(volume / "tls.crt"), tls_key_file=str(volume / "tls.key")
    )
    ctx = ssl_context(settings)
    assert ctx is not None
    runner, port = await _serve(ctx)
    yield volume, port
    await runner.cleanup()


async def test_symlink_swap_is_served_to_the_next_connection(
    volume_server: tuple[Path, int], tmp_path: Path, ca: CertPair
) -> None:
    volume, port = volume_server
    assert await _served_cert(port) == _der(volume / "tls.crt")
    first = _der(volume / "tls.crt")

    _secret_volume(volume, "..v2", make_cert(tmp_path, ca, "exporter", stem="v2"))
    rotated = await _served_cert(port)
    assert rotated == _der(volume / "tls.crt")
    assert rotated != first


async def test_in_place_rewrite_is_served(tmp_path: Path, ca: CertPair) -> None:
    old = make_cert(tmp_path, ca, "exporter", stem="old")
    live = CertPair(tmp_path / "live.crt", tmp_path / "live.key")
    shutil.copy(old.cert, live.cert)
    shutil.copy(old.key, live.key)
    ctx = ssl_context(settings_for(tls_cert_file=str(live.cert), tls_key_file=str(live.key)))
    assert ctx is not None
    runner, port = await _serve(ctx)
    try:
        assert await _served_cert(port) == _der(old.cert)
        new = make_cert(tmp_path, ca, "exporter", stem="new")
        live.cert.write_bytes(new.cert.read_bytes())
        # Half-way through a non-atomic rotation the key does not match the certificate:
        # the server keeps the previous pair rather than failing handshakes.
        assert await _served_cert(port) == _der(old.cert)
        live.key.write_bytes(new.key.read_bytes())
        assert await _served_cert(port) == _der(new.cert)
    finally:
        await runner.cleanup()


async def test_client_certificates_are_optional_but_verified(tmp_path: Path, ca: CertPair) -> None:
    server = make_cert(tmp_path, ca, "exporter")
    front_proxy_ca = make_ca(tmp_path, "front-proxy-ca")
    settings = settings_for(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        requestheader_client_ca_file=str(front_proxy_ca.cert),
    )
    ctx = ssl_context(settings)
    assert ctx is not None
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    runner, port = await _serve(ctx)
    try:
        assert await _served_cert(port) == _der(server.cert)
        trusted = make_cert(tmp_path, front_proxy_ca, "front-proxy-client", client=True)
        assert await _served_cert(port, trusted) == _der(server.cert)
        stranger = make_cert(tmp_path, make_ca(tmp_path, "other-ca"), "intruder", client=True)
        # TLS 1.3 verifies the client after its handshake: the server then closes
        # without answering (or the handshake fails outright with TLS 1.2).
        try:
            response, _ = await _exchange(port, stranger)
        except (ssl.SSLError, ConnectionError):
            response = b""
        assert response == b""
    finally:
        await runner.cleanup()


def test_plain_http_without_certificate() -> None:
    assert ssl_context(settings_for()) is None


def test_unreadable_files_are_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(StartupError, match=str(missing)):
        ssl_context(settings_for(tls_cert_file=str(missing), tls_key_file=str(tmp_path / "k")))


async def test_front_proxy_ca_appearing_later_is_used(tmp_path: Path, ca: CertPair) -> None:
    server = make_cert(tmp_path, ca, "exporter")
    front_proxy_ca = make_ca(tmp_path, "front-proxy-ca")
    client = make_cert(tmp_path, front_proxy_ca, "front-proxy-client", client=True)
    mounted_ca = tmp_path / "requestheader" / "requestheader-client-ca-file"
    settings = settings_for(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        requestheader_client_ca_file=str(mounted_ca),
    )
    ctx = ssl_context(settings)
    assert ctx is not None
    runner, port = await _serve(ctx)
    try:
        assert await _served_cert(port) == _der(server.cert)  # bearer callers are served
        try:
            response, _ = await _exchange(port, client)
        except (ssl.SSLError, ConnectionError):
            response = b""
        assert response == b""
        mounted_ca.parent.mkdir()
        shutil.copy(front_proxy_ca.cert, mounted_ca)
        assert await _served_cert(port, client) == _der(server.cert)
    finally:
        await runner.cleanup()


def test_front_proxy_trust_from_the_cluster_needs_credentials(tmp_path: Path, ca: CertPair) -> None:
    """With auth on and no CA file the ConfigMap is read: no credentials is a start error."""
    server = make_cert(tmp_path, ca, "exporter")
    settings = settings_for(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        auth_enabled=True,
        kubeconfig=str(tmp_path / "no-kubeconfig"),
    )
    parts = Parts(settings)
    with pytest.raises(StartupError) as raised:
        parts.tls()
    message = str(raised.value)
    assert "kube-system/extension-apiserver-authentication" in message
    assert "RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE" in message
    assert str(tmp_path / "no-kubeconfig") in message


def test_no_front_proxy_without_auth_or_ca_file(tmp_path: Path, ca: CertPair) -> None:
    server = make_cert(tmp_path, ca, "exporter")
    ctx = ssl_context(settings_for(tls_cert_file=str(server.cert), tls_key_file=str(server.key)))
    assert ctx is not None
    assert ctx.front_proxy is None and ctx.verify_mode == ssl.CERT_NONE


def test_a_ca_file_that_does_not_load_at_start_is_a_clear_error(
    tmp_path: Path, ca: CertPair
) -> None:
    server = make_cert(tmp_path, ca, "exporter")
    broken = tmp_path / "requestheader-client-ca-file"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    settings = settings_for(
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        requestheader_client_ca_file=str(broken),
    )
    with pytest.raises(StartupError, match=str(broken)):
        ssl_context(settings)
