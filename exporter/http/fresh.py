"""``/gather_runtime_info`` about the containers running now: its ``Gather`` with a fresh
pass first.

insights-runtime-extractor extracts on each request, so a container started a moment
ago is in its answer. Here a request that asks for every container, or for one the
latest snapshot does not have, first asks the extractor for a pass at most
``max_age`` seconds old (``State.refresh``: one fetch shared by every concurrent
request and the poll, and the extractor takes at most one pass per quarter second
whatever the callers). A request whose containers are all in the latest snapshot is
answered from it: their fingerprints are there already.
"""

from __future__ import annotations

from collections.abc import Sequence

from exporter.http.insights import Gather, Gathered, Selection, gather_from_views
from exporter.node.state import State
from exporter.node.views import Views


def fresh_gather(views: Views, state: State, max_age: float) -> Gather:
    latest = gather_from_views(views)

    async def gather(selection: Selection) -> Sequence[Gathered]:
        if not selection.everything and views.current() is not None:
            found = await latest(selection)
            if len(found) >= len(selection.ids):
                return found
        await state.refresh(max_age)
        return await latest(selection)

    return gather
