"""The pod proxy and the WebSocket port-forward subresource."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.apiserver.base import Shared
from tests.support.apiserver.objects import PORTFORWARD_PROTOCOL


class Proxies(Shared):
    """pods/proxy and pods/portforward, relayed to registered targets."""

    def set_pod_backend(self, namespace: str, name: str, url: str) -> None:
        """Where the pod proxy subresource forwards requests for this pod."""
        self._backends[(namespace, name)] = url.rstrip("/")

    def set_pod_portforward(
        self, namespace: str, name: str, port: int, host: str, target_port: int
    ) -> None:
        """Where the port-forward subresource connects for this pod's container `port`."""
        self._forwards[(namespace, name, port)] = (host, target_port)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["proxy"] += 1
        ns, target = request.match_info["ns"], request.match_info["target"]
        parts = target.split(":")
        scheme = "http"
        if parts[0] in ("http", "https") and len(parts) > 1:
            scheme = parts.pop(0)
        name, port = parts[0], (parts[1] if len(parts) > 1 else "")
        path = "/" + request.match_info.get("path", "")
        self.proxy_requests.append(
            (request.method, ns, name, scheme, port, path, request.query_string)
        )
        with self._lock:
            if (ns, name) not in self._pods:
                return self._error(404, "NotFound", f'pods "{name}" not found')
        backend = self._backends.get((ns, name))
        if backend is None:
            return self._error(
                503, "ServiceUnavailable", f"error trying to reach service: no backend for {name}"
            )
        assert self._client is not None
        url = backend + path + (f"?{request.query_string}" if request.query_string else "")
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            async with self._client.request(
                request.method, url, data=await request.read(), headers=headers
            ) as upstream:
                body = await upstream.read()
                content_type = upstream.headers.get("Content-Type", "application/octet-stream")
                return web.Response(
                    status=upstream.status, body=body, headers={"Content-Type": content_type}
                )
        except aiohttp.ClientError as err:
            return self._error(503, "ServiceUnavailable", f"error trying to reach service: {err}")

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["portforward"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        self.portforward_requests.append((ns, name, ",".join(request.query.getall("ports", []))))
        with self._lock:
            pod = self._pods.get((ns, name))
        if pod is None:
            return self._error(404, "NotFound", f'pods "{name}" not found')
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._error(400, "BadRequest", "Upgrade request required")
        try:
            ports = _forward_ports(request.query.getall("ports", []))
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,))
        await ws.prepare(request)
        for index, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await ws.send_bytes(bytes([2 * index]) + prefix)
            await ws.send_bytes(bytes([2 * index + 1]) + prefix)
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps: list[asyncio.Task[None]] = []
        for index, port in enumerate(ports):
            target = self._forwards.get((ns, name, port))
            try:
                if target is None:
                    raise ConnectionRefusedError(f"dial tcp4 127.0.0.1:{port}: connection refused")
                reader, writers[2 * index] = await asyncio.open_connection(*target)
            except OSError as err:
                uid = pod["metadata"]["uid"]
                message = f"error forwarding port {port} to pod {name}, uid {uid}: {err}"
                await ws.send_bytes(bytes([2 * index + 1]) + message.encode())
                continue
            pumps.append(asyncio.create_task(_pump_to_websocket(reader, ws, 2 * index)))
        try:
            if pumps:
                from_client = asyncio.create_task(_pump_from_websocket(ws, writers))
                ends: list[asyncio.Future[Any]] = [
                    from_client,
                    asyncio.gather(*pumps, return_exceptions=True),
                ]
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                from_client.cancel()
        finally:
            for task in pumps:
                task.cancel()
            for writer in writers.values():
                writer.close()
            await ws.close()
        return ws


def _forward_ports(values: list[str]) -> list[int]:
    """The `ports` query values as kubelet parses them (comma lists, 1..65535)."""
    if not values:
        raise ValueError('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError('query parameter "port" cannot be empty')
        for text in value.split(","):
            if not text.isdigit() or int(text) > 65535:
                raise ValueError(f'unable to parse "{value}" as a port')
            if int(text) < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(int(text))
    return ports


async def _pump_to_websocket(
    reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int
) -> None:
    """Pod side → client, each chunk one binary message on the port's data channel."""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(64 * 1024):
            await ws.send_bytes(bytes([channel]) + chunk)


async def _pump_from_websocket(
    ws: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter]
) -> None:
    """Client → pod side: data-channel messages are written to that port's connection."""
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            continue
        writer = writers.get(message.data[0])
        if writer is None:
            continue
        try:
            writer.write(message.data[1:])
            await writer.drain()
        except ConnectionError:
            return
