"""The exporter's side of the unix socket: the extractor's latest Snapshot, by difference.

The socket is the only channel between the privileged and the network-facing process,
so every way it can fail (no socket, no answer, a wrong answer) becomes one
ExtractorError with a message an operator can act on, never a traceback.

The first fetch asks for the whole snapshot (``SNAPSHOT_PATH``) and keeps its tag; every
later one asks for what changed since that tag (``CHANGES_PATH``) and applies it to the
snapshot held, so a poll of a quiet node moves a few kilobytes and decodes only the
records that changed (``extractor/contract/changes.py``). An extractor that sends no
tag, or changes that do not fit, put the client back on whole snapshots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TypeVar

import httpx
import orjson
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from extractor.contract import (
    CHANGES_PATH,
    MAX_AGE_PARAM,
    SCHEMA_VERSION,
    SINCE_PARAM,
    SNAPSHOT_PATH,
    Changes,
    ChangesMismatch,
    Snapshot,
    apply,
)

MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
_Doc = TypeVar("_Doc", Snapshot, Changes)


class ExtractorError(Exception):
    """The extractor could not be reached or sent something that is not a Snapshot."""


class ExtractorClient:
    """HTTP over the extractor's unix socket, with a deadline on the whole exchange."""

    def __init__(
        self, socket_path: str, timeout_seconds: float, *, max_bytes: int = MAX_SNAPSHOT_BYTES
    ) -> None:
        self.socket_path = socket_path
        self._timeout = timeout_seconds
        self._max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path),
            base_url="http://extractor",
            timeout=timeout_seconds,
        )
        self._held: Snapshot | None = None
        self._tag: str | None = None
        self._where = f"extractor socket {socket_path}"
        self.bytes_read = 0
        """Bytes of every answer read so far."""
        self.fetches = {"full": 0, "changes": 0}

    @property
    def tag(self) -> str | None:
        """The tag of the snapshot held, None before the first fetch or from an
        extractor that tags none."""
        return self._tag

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, max_age: float | None = None) -> Snapshot:
        """The latest snapshot (taken at most ``max_age`` seconds ago, if given: the
        extractor takes a fresh pass for it). The same object as the last fetch's when
        the extractor has taken no pass since."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(max_age)
        except TimeoutError:
            raise ExtractorError(f"{self._where}: no answer within {self._timeout:g}s") from None
        except httpx.ConnectError as e:
            raise ExtractorError(f"{self._where}: cannot connect ({_reason(e)})") from None
        except httpx.TimeoutException:
            raise ExtractorError(f"{self._where}: no answer within {self._timeout:g}s") from None
        except httpx.HTTPError as e:
            raise ExtractorError(f"{self._where}: {type(e).__name__} ({_reason(e)})") from None

    async def _fetch(self, max_age: float | None) -> Snapshot:
        params = {} if max_age is None else {MAX_AGE_PARAM: f"{max_age:g}"}
        if self._held is not None and self._tag is not None:
            status, body, tag = await self._get(CHANGES_PATH, {**params, SINCE_PARAM: self._tag})
            if status == 200:
                self.fetches["changes"] += 1
                changes = self._parse(Changes, body)
                if changes.tag == self._tag and changes.since == self._tag:
                    return self._held  # no pass since: the very snapshot held
                try:
                    snapshot = apply(self._held if changes.since == self._tag else None, changes)
                except ChangesMismatch:
                    self._held = self._tag = None  # whole again, below
                else:
                    return self._keep(snapshot, changes.tag)
            elif status != 404:  # 404: an extractor without differences
                raise ExtractorError(f"{self._where}: HTTP {status}: {_text(body)}")
            else:
                self._tag = None
        status, body, tag = await self._get(SNAPSHOT_PATH, params)
        if status != 200:
            raise ExtractorError(f"{self._where}: HTTP {status}: {_text(body)}")
        self.fetches["full"] += 1
        return self._keep(self._parse(Snapshot, body), tag)

    def _keep(self, snapshot: Snapshot, tag: str | None) -> Snapshot:
        if snapshot.schema_version > SCHEMA_VERSION:
            raise ExtractorError(
                f"{self._where}: snapshot schema {snapshot.schema_version} is newer than "
                f"this exporter's {SCHEMA_VERSION}; upgrade the exporter"
            )
        self._held, self._tag = snapshot, tag
        return snapshot

    def _parse(self, model: type[_Doc], body: bytes) -> _Doc:
        try:
            return model.model_validate_json(body)
        except ValidationError as e:
            _newer(self._where, body)  # its new fields are why: say that, not which field
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(document)"
            raise ExtractorError(
                f"{self._where}: not a valid snapshot "
                f"({e.error_count()} errors; {loc}: {first['msg']})"
            ) from None

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, bytes, str | None]:
        async with self._client.stream("GET", path, params=params) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise ExtractorError(
                        f"{self._where}: snapshot larger than {self._max_bytes} bytes"
                    )
                chunks.append(chunk)
            self.bytes_read += size
            etag = resp.headers.get("ETag")
            return resp.status_code, b"".join(chunks), etag.strip('"') if etag else None

    def collector(self) -> Collector:
        """What the socket carried, for /metrics."""
        return _SocketCollector(self)


class _SocketCollector(Collector):
    def __init__(self, client: ExtractorClient) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "runtime_insights_exporter_snapshot_bytes",
            "bytes read from the extractor's socket",
            value=self._client.bytes_read,
        )
        fetches = CounterMetricFamily(
            "runtime_insights_exporter_snapshot_fetches",
            "snapshots fetched from the extractor, whole or as changes since the last",
            labels=["kind"],
        )
        for kind, count in self._client.fetches.items():
            fetches.add_metric([kind], count)
        yield fetches


def _text(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace").strip()


def _newer(where: str, body: bytes) -> None:
    """Raise if the document says it is of a newer schema than this exporter reads."""
    try:
        version = orjson.loads(body).get("schema_version")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ExtractorError(
            f"{where}: snapshot schema {version} is newer than "
            f"this exporter's {SCHEMA_VERSION}; upgrade the exporter"
        )


def _reason(e: BaseException) -> str:
    """The innermost cause's message: 'No such file or directory' beats a wrapper's text."""
    while e.__cause__ is not None or e.__context__ is not None:
        nxt = e.__cause__ or e.__context__
        assert nxt is not None
        e = nxt
    return str(e) or type(e).__name__
