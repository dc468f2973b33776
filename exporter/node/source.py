"""The exporter's side of the unix socket: fetch one Snapshot from the extractor.

The socket is the only channel between the privileged and the network-facing process,
so every way it can fail (no socket, no answer, a wrong answer) becomes one
ExtractorError with a message an operator can act on, never a traceback.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
from pydantic import ValidationError

from extractor.contract import SCHEMA_VERSION, SNAPSHOT_PATH, Snapshot

MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024


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

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self) -> Snapshot:
        where = f"extractor socket {self.socket_path}"
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._get(where)
        except TimeoutError:
            raise ExtractorError(f"{where}: no answer within {self._timeout:g}s") from None
        except httpx.ConnectError as e:
            raise ExtractorError(f"{where}: cannot connect ({_reason(e)})") from None
        except httpx.TimeoutException:
            raise ExtractorError(f"{where}: no answer within {self._timeout:g}s") from None
        except httpx.HTTPError as e:
            raise ExtractorError(f"{where}: {type(e).__name__} ({_reason(e)})") from None
        try:
            snapshot = Snapshot.model_validate_json(body)
        except ValidationError as e:
            _newer(where, body)  # its new fields are why: say that, not which field
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(document)"
            raise ExtractorError(
                f"{where}: not a valid snapshot ({e.error_count()} errors; {loc}: {first['msg']})"
            ) from None
        if snapshot.schema_version > SCHEMA_VERSION:
            _newer(where, body)
        return snapshot

    async def _get(self, where: str) -> bytes:
        async with self._client.stream("GET", SNAPSHOT_PATH) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise ExtractorError(f"{where}: snapshot larger than {self._max_bytes} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            if resp.status_code != 200:
                text = body[:300].decode("utf-8", "replace").strip()
                raise ExtractorError(f"{where}: HTTP {resp.status_code}: {text}")
            return body


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
