"""Answers rendered once per view, off the event loop: concurrent requests share one
render, the loop keeps answering meanwhile, a failed render is tried again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from exporter.http.rendering import Rendered
from exporter.node.state import State
from exporter.node.views import NodeView, Views
from tests.support.exporter_doubles import standard_snapshot


def view_of(taken_at: float) -> NodeView:
    state = State()
    state.record(standard_snapshot(taken_at))
    view = Views(state, None).current()
    assert view is not None
    return view


async def test_concurrent_requests_share_one_render_off_the_loop() -> None:
    rendered, view = Rendered(), view_of(1.0)
    started, calls = threading.Event(), []

    def slow() -> bytes:
        calls.append(threading.get_ident())
        started.set()
        time.sleep(0.3)  # blocks its thread, not the loop
        return b"body"

    waiting = [asyncio.create_task(rendered.get(view, "k", slow)) for _ in range(5)]
    await asyncio.to_thread(started.wait, 5)
    ticks = 0
    while not all(w.done() for w in waiting):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks > 5  # the loop ran while the render slept
    assert [await w for w in waiting] == [b"body"] * 5
    assert len(calls) == 1 and calls[0] != threading.get_ident()
    assert await rendered.get(view, "k", slow) == b"body" and len(calls) == 1


async def test_a_new_view_renders_again_and_a_failure_is_not_kept() -> None:
    rendered, first = Rendered(), view_of(1.0)
    outcomes: list[bytes | Exception] = [RuntimeError("boom"), b"one", b"two"]

    def render() -> bytes:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(RuntimeError):
        await rendered.get(first, "k", render)
    assert await rendered.get(first, "k", render) == b"one"
    assert await rendered.get(view_of(2.0), "k", render) == b"two"
    assert rendered.renders == 3
