"""POST batches of CloudEvents to OpenMeter's ingest endpoint, retrying what may succeed.

Status handling follows shared/reference/openmeter.md 1.4: 2xx is success (204 on v1);
429 waits for ``Retry-After``; 408, 5xx and network errors back off exponentially with
full jitter; 400/412/413/422 mean the events themselves are refused, so retrying them
would loop forever (``Rejected``); 401/403/404 are configuration problems, kept for a
later round (``Unavailable``). Retrying is safe because event ids are deterministic.
The body is sent as pre-serialized bytes with the bare media type, because the v1
handler compares the Content-Type header by exact string equality.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import httpx
import orjson

from exporter.meter.events import Event

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents-batch+json"
INGEST_PATH = "/api/v1/events"
REJECTING = frozenset({400, 412, 413, 422})
RETRYABLE = frozenset({408, 429})


class DeliveryError(Exception):
    """A batch was not delivered."""


class Rejected(DeliveryError):
    """OpenMeter refused the events as invalid: sending them again cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class Unavailable(DeliveryError):
    """Not delivered this round (unreachable, overloaded, or misconfigured); keep the batch."""


def problem_detail(response: httpx.Response) -> str:
    """The RFC 7807 ``detail`` (or ``title``) if there is one, else the start of the body."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (OpenMeter Cloud sends seconds, never a date)."""
    try:
        value = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


class OpenMeterClient:
    """One AsyncClient; ``send`` returns on success or raises ``DeliveryError``."""

    def __init__(
        self,
        url: str,
        *,
        token: Callable[[], str | None],
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = url.rstrip("/") + INGEST_PATH
        self._token = token
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self.retries = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base·2^attempt)]."""
        return self._jitter() * min(self._max_delay, self._base_delay * 2.0**attempt)

    async def send(self, events: list[Event]) -> None:
        body = orjson.dumps(events)
        last = "no attempt made"
        for attempt in range(self._max_attempts):
            if attempt:
                self.retries += 1
            headers = {"Content-Type": CONTENT_TYPE}
            try:
                token = self._token()
            except OSError as e:
                raise Unavailable(f"OpenMeter token unreadable: {e}") from None
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = await self._http.post(self.endpoint, content=body, headers=headers)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                delay = self.backoff(attempt)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                detail = problem_detail(response)
                if status in REJECTING:
                    raise Rejected(status, detail)
                if status not in RETRYABLE and status < 500:
                    raise Unavailable(f"HTTP {status} from {self.endpoint}: {detail}")
                last = f"HTTP {status}: {detail}"
                hinted = retry_after(response) if status == 429 else None
                delay = self.backoff(attempt) if hinted is None else min(hinted, self._max_delay)
            if attempt + 1 < self._max_attempts:
                log.info("OpenMeter: %s; retrying in %.1fs", last, delay)
                await self._sleep(delay)
        raise Unavailable(f"gave up after {self._max_attempts} attempt(s): {last}")
