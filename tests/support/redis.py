"""A real ``redis-server`` (the distribution's) for tests, and a TCP link that can be cut.

``RedisServer`` runs one private server on 127.0.0.1 with its own free port and its own
directory (no persistence, nothing shared with other tests or a system Redis);
``restart()`` stops it and starts a fresh one on the same port, as a pod restart does.
``CuttableLink`` sits between a client and the server: ``cut()`` drops every connection
and refuses new ones (a network partition), ``hang()`` accepts connections and never
forwards a byte (a black hole: only timeouts notice it), ``restore()`` heals.

    with RedisServer.start(tmp_path) as redis:   # redis.port, redis.url
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

REDIS_SERVER = "redis-server"


def skip_reason() -> str | None:
    if shutil.which(REDIS_SERVER) is None:
        return "redis-server is not installed (make test installs it as root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1:<port>, data in its own directory."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, parent: Path) -> RedisServer:
        directory = parent / f"redis-{free_port()}"
        directory.mkdir(parents=True)
        server = cls(directory, free_port())
        server._launch()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        config = self.directory / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"dir {self.directory}",
                    'save ""',
                    "appendonly no",
                    "daemonize no",
                    f"logfile {self.directory / 'redis.log'}",
                    "",
                ]
            )
        )
        self._process = subprocess.Popen([REDIS_SERVER, str(config)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited: {log[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        """A fresh, empty server on the same port (what a Redis pod restart looks like)."""
        self.stop()
        self._launch()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class CuttableLink:
    """A TCP relay 127.0.0.1:<port> → target that a test can cut, black-hole or restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = "open"  # open | cut | hang
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def __aenter__(self) -> CuttableLink:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self.mode = "cut"
        self._drop()

    def hang(self) -> None:
        self.mode = "hang"
        self._drop()

    def restore(self) -> None:
        self.mode = "open"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "cut":
            writer.transport.abort()
            return
        if self.mode == "hang":
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client gives up
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
