"""A new snapshot re-joins only the containers whose records changed, and the view it
makes equals the one joined from nothing."""

from __future__ import annotations

from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.node.state import State
from exporter.node.views import Views, build_view
from extractor.contract import Container
from tests.support.exporter_doubles import FakeLookup, api_meta_for, standard_snapshot, usage

T0 = 1_700_000_000.0


class CountingLookup(FakeLookup):
    def __init__(self, pods: list[PodMeta]) -> None:
        super().__init__(pods)
        self.asked: list[str] = []

    def get_by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerStatus] | None:
        self.asked.append(container_id)
        return super().get_by_container_id(container_id)


def test_only_changed_containers_are_joined_again_and_the_view_is_the_same() -> None:
    snap = standard_snapshot(T0)
    lookup = CountingLookup(api_meta_for(snap))
    state = State()
    state.record(snap)
    views = Views(state, lookup)
    assert views.current() is not None
    lookup.asked.clear()
    changed = snap.containers[1]
    containers: list[Container] = [
        c.model_copy(update={"runtime_seconds": (c.runtime_seconds or 0) + 10})
        for c in snap.containers
    ]
    containers[1] = containers[1].model_copy(
        update={"usage": usage(changed.usage.cgroup, 99, 99)}  # type: ignore[union-attr]
    )
    state.record(snap.model_copy(update={"taken_at": T0 + 10, "containers": containers}))
    view = views.current()
    assert view is not None
    assert lookup.asked == [changed.id]
    assert state.reading is not None
    assert view == build_view(state.reading, lookup)
    assert [cv.container for cv in view.containers] == [c for c in containers if not c.sandbox]


def test_new_pod_metadata_joins_everything_again() -> None:
    snap = standard_snapshot(T0)
    lookup = CountingLookup(api_meta_for(snap))
    state = State()
    state.record(snap)
    views = Views(state, lookup)
    views.current()
    lookup.asked.clear()
    lookup.generation += 1
    state.record(snap.model_copy(update={"taken_at": T0 + 10}))
    assert views.current() is not None
    assert len(lookup.asked) == len([c for c in snap.containers if not c.sandbox])
