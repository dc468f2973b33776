"""POST batches of CloudEvents to OpenMeter's ingest endpoint, retrying what may succeed.

Statuses, as OpenMeter and what sits in front of it answer: 2xx is success (204 on v1,
202 on v3); 429 waits for ``Retry-After``; 408, 425, 5xx and network errors back off
exponentially with full jitter; so does 412, which a proxy may answer for a while. 413
means the body is too big for something on the way: ``TooLarge``, and the meter halves
the batch. 400 and 422 mean OpenMeter refused the events (``Refused``): the meter halves
the batch to find the one, and keeps retrying it in later rounds before parking it,
because a proxy's or a misconfigured gateway's 400 can be transient too. 401, 403, 404
and other 4xx are configuration problems, kept for a later round (``Unavailable``).
Retrying is always safe because event ids are deterministic. The body is sent as
pre-serialized bytes with the bare media type, because the v1 handler compares the
Content-Type header by exact string equality. Every retry, give-up and recovery is
logged with the endpoint and the server's problem detail.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
import orjson

from exporter.meter.events import Event

log = logging.getLogger(__name__)

Api = Literal["v1", "v3"]
CONTENT_TYPE = "application/cloudevents-batch+json"
INGEST_PATHS: dict[Api, str] = {"v1": "/api/v1/events", "v3": "/api/v3/openmeter/events"}
REFUSING = frozenset({400, 422})
TRANSIENT = frozenset({408, 412, 425, 429})


class DeliveryError(Exception):
    """A batch was not delivered."""


class Refused(DeliveryError):
    """OpenMeter refused the events as invalid."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class TooLarge(Refused):
    """413: the body is too big for OpenMeter or a proxy in front of it."""


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
        api: Api = "v1",
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = url.rstrip("/") + INGEST_PATHS[api]
        self._token = token
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self.retries = 0

    def describe(self) -> str:
        return self.endpoint

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
                if status == 413:
                    raise TooLarge(status, detail)
                if status in REFUSING:
                    raise Refused(status, detail)
                if status not in TRANSIENT and status < 500:
                    raise Unavailable(f"HTTP {status} from {self.endpoint}: {detail}")
                last = f"HTTP {status}: {detail}"
                hinted = retry_after(response) if status == 429 else None
                delay = self.backoff(attempt) if hinted is None else min(hinted, self._max_delay)
            if attempt + 1 < self._max_attempts:
                log.info(
                    "OpenMeter POST %s: %s; retrying in %.1fs (attempt %d of %d)",
                    self.endpoint,
                    last,
                    delay,
                    attempt + 2,
                    self._max_attempts,
                )
                await self._sleep(delay)
        raise Unavailable(
            f"POST {self.endpoint} gave up after {self._max_attempts} attempt(s): {last}"
        )
