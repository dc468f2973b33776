"""Starting and stopping the exporter's parts: background loops and what they hold open.

Why: every loop must start at most once and stop by cancelling and waiting, and every
client must close after the loops that use it, so a shutdown never leaves a task writing
after its resources are gone. ``Background`` is one loop; ``Lifecycle`` is the one list
the wiring (exporter/wiring.py) puts every part on, started in order, stopped in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """Runs ``run()`` in a task named ``name`` between ``start()`` and ``stop()``."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


Start = Callable[[], Awaitable[None] | None]
Stop = Callable[[], Awaitable[None] | None]


class Lifecycle:
    """Parts started in the order they were added and stopped in the reverse order.

    A part that failed to start is not stopped; one that fails to stop is logged and the
    others still stop.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[str, Start | None, Stop]] = []
        self._started: list[tuple[str, Stop]] = []

    def add(self, name: str, stop: Stop, start: Start | None = None) -> None:
        """A part to ``start`` with the others and to ``stop`` at the end; one without
        ``start`` (a client) is live from now, so a failed build still closes it."""
        self._parts.append((name, start, stop))
        if start is None:
            self._started.append((name, stop))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._parts]

    async def start(self) -> None:
        for name, start, stop in self._parts:
            if start is None:
                continue
            outcome = start()
            if inspect.isawaitable(outcome):
                await outcome
            self._started.append((name, stop))

    async def stop(self) -> None:
        while self._started:
            name, stop = self._started.pop()
            try:
                outcome = stop()
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("stopping %s failed", name)
