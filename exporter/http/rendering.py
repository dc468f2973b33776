"""Answers rendered once per node view and shared by every request.

A new snapshot (every poll) makes a new view; the first request after it for a given
answer renders that answer in a worker thread, so the event loop keeps serving
``/healthz`` and everything else meanwhile, and every request arriving during the render
awaits the same one. Later requests get the bytes. A failed render is not kept: the
next request tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from exporter.node.views import NodeView

MAX_ANSWERS = 64
"""Answers kept per view (one per path and query): beyond, filtered queries are rendered
per request, so arbitrary query strings cannot grow memory."""


class Rendered:
    """Rendered bytes per (view, key); only the current view's are kept."""

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self._view: NodeView | None = None
        self._answers: dict[Hashable, asyncio.Future[bytes]] = {}
        self._max = max_answers
        self.renders = 0

    async def get(self, view: NodeView, key: Hashable, render: Callable[[], bytes]) -> bytes:
        if view is not self._view:
            self._view, self._answers = view, {}
        answer = self._answers.get(key)
        if answer is None:
            self.renders += 1
            answer = asyncio.ensure_future(asyncio.to_thread(render))
            if len(self._answers) < self._max:
                self._answers[key] = answer
                answer.add_done_callback(lambda done: self._forget_failed(view, key, done))
        return await asyncio.shield(answer)

    def _forget_failed(self, view: NodeView, key: Hashable, done: asyncio.Future[bytes]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed and view is self._view and self._answers.get(key) is done:
            del self._answers[key]
