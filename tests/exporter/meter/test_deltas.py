"""Exact per-window CPU deltas from cumulative counters (exporter.meter.deltas).

Rules from shared/reference/cgroups.md section 8: first sight is a baseline, a decrease
is a reset, the pod cgroup keeps exited containers' CPU, an exited pod's final reading
(the extractor's tombstone, repeated in every snapshot for a while) is billed exactly
once, and only a pod that vanished without one loses its last partial window.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.meter.deltas import Marks, compute
from exporter.meter.events import EXITED, split_by_container
from tests.support.meter_snapshots import C, P, X, snap

UID = "5b0e6c1a-0000-4000-8000-000000000001"


def test_first_sight_is_a_baseline_then_the_delta_is_the_difference() -> None:
    first = compute(Marks(), snap(100.0, P(UID, 5_000, [C("a", 4_000)])))
    assert first.windows == []
    second = compute(first.marks, snap(160.0, P(UID, 7_500, [C("a", 6_000)])))
    (w,) = second.windows
    assert (w.cpu_ns, w.live, w.start, w.end) == (2_500, {"a": 2_000}, 100.0, 160.0)
    assert (w.counter_start, w.counter_end) == (5_000, 7_500)
    assert w.remainder_ns == 500


def test_a_pod_started_inside_the_window_is_billed_its_whole_counter() -> None:
    marks = compute(Marks(), snap(100.0)).marks
    # started at 130, gone before 160 would be lost; seen at 160 it is billed from 0
    out = compute(marks, snap(160.0, P(UID, 900_000, [C("short", 880_000, started=130.0)])))
    (w,) = out.windows
    assert (w.cpu_ns, w.live["short"], w.start, w.counter_start) == (900_000, 880_000, 130.0, 0)


def test_an_old_pod_seen_for_the_first_time_is_not_billed_its_past() -> None:
    marks = compute(Marks(), snap(100.0)).marks
    out = compute(marks, snap(160.0, P(UID, 900_000, [C("old", 880_000, started=50.0)])))
    assert out.windows == []
    assert out.marks.pods[UID].cpu_ns == 900_000


def test_a_decrease_is_a_reset_counted_only_if_the_container_is_new() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 8_000, started=10.0)]))).marks
    # same id, counter went backwards, container (re)started after the previous pass
    out = compute(m1, snap(160.0, P(UID, 12_000, [C("a", 300, started=120.0)])))
    assert out.resets == 1 and out.windows[0].live == {"a": 300}
    # went backwards but started before the previous pass: a new baseline, no delta
    out = compute(m1, snap(160.0, P(UID, 12_000, [C("a", 300, started=10.0)])))
    assert out.resets == 1 and out.windows[0].live == {}
    assert out.marks.pods[UID].containers["a"].cpu_ns == 300


def test_an_exited_container_is_the_pod_delta_minus_the_live_ones() -> None:
    m1 = compute(
        Marks(), snap(100.0, P(UID, 10_000, [C("app", 4_000), C("job", 5_000, name="job")]))
    ).marks
    # "job" burned 3000 more and exited; its cgroup is gone but the pod kept its CPU
    out = compute(m1, snap(160.0, P(UID, 13_400, [C("app", 4_400)])))
    (w,) = out.windows
    assert w.cpu_ns == 3_400 and w.live == {"app": 400}
    assert w.exited == ("job",) and w.names["job"] == "job"
    assert w.remainder_ns == 3_000
    assert "job" not in out.marks.pods[UID].containers


def test_a_vanished_pod_is_counted_and_forgotten() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1)]))).marks
    out = compute(m1, snap(160.0))
    assert out.windows == [] and out.vanished_pods == 1 and out.marks.pods == {}


def test_an_unreadable_pod_counter_waits_instead_of_losing_exited_cpu() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1_000)]))).marks
    m2 = compute(m1, snap(160.0, P(UID, None, [C("a", 1_500)])))
    assert m2.windows == [] and m2.marks.pods[UID] == m1.pods[UID]
    (w,) = compute(m2.marks, snap(220.0, P(UID, 12_000, [C("a", 1_600)]))).windows
    assert (w.cpu_ns, w.start, w.live) == (2_000, 100.0, {"a": 600})


def test_sandbox_cpu_is_left_to_the_pod_remainder() -> None:
    pods = [C("pause", None, sandbox=True), C("app", 100)]
    m1 = compute(Marks(), snap(100.0, P(UID, 1_000, pods))).marks
    (w,) = compute(m1, snap(160.0, P(UID, 1_300, [pods[0], C("app", 200)]))).windows
    assert w.live == {"app": 100} and w.remainder_ns == 200 and w.exited == ()


# Exactness: over any sequence of passes, billed CPU == the pod counter's total change
# since its baseline. Steps: how much CPU each of up to 3 containers burns, and whether
# a container exits (its id never comes back) before the next pass.
step = st.tuples(
    st.lists(st.integers(0, 10**12), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.integers(0, 10**9),  # CPU of the pod itself (sandbox, exited-between-passes)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=12), st.integers(0, 10**15))
def test_billed_cpu_equals_the_pod_counter_change_exactly(
    steps: list[tuple[list[int], list[bool], int]], base: int
) -> None:
    pod = base
    alive = {f"c{i}": base // 7 for i in range(3)}
    marks = compute(Marks(), snap(0.0, P(UID, pod, [C(k, v) for k, v in alive.items()]))).marks
    billed = 0
    for n, (burns, exits, extra) in enumerate(steps, start=1):
        for (cid, value), burn, gone in zip(list(alive.items()), burns, exits, strict=False):
            alive[cid] = value + burn
            pod += burn
            if gone:
                del alive[cid]
        pod += extra
        out = compute(marks, snap(float(n), P(UID, pod, [C(k, v) for k, v in alive.items()])))
        billed += sum(w.cpu_ns for w in out.windows)
        assert all(sum(w.live.values()) + w.remainder_ns == w.cpu_ns for w in out.windows)
        marks = out.marks
    assert billed == pod - base
    assert isinstance(billed, int)


def test_a_pod_seen_before_that_exits_is_billed_mark_to_final_once() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 9_000, name="app")]))).marks
    gone = X(UID, 13_500, started=50.0, exited=140.0)
    out = compute(m1, snap(160.0, exited=(gone,)))
    (w,) = out.windows
    assert (w.cpu_ns, w.start, w.end) == (3_500, 100.0, 140.0)
    assert (w.counter_start, w.counter_end, w.live, w.exited) == (10_000, 13_500, {}, ("a",))
    assert split_by_container(w, {"a": "app"}) == {"app": 3_500}
    assert out.vanished_pods == 0 and out.marks.pods[UID].finished
    # the same tombstone in the next snapshots bills nothing; then it ages out, no loss
    again = compute(out.marks, snap(220.0, exited=(gone,)))
    assert again.windows == [] and again.marks.pods[UID] == out.marks.pods[UID]
    later = compute(again.marks, snap(280.0))
    assert later.windows == [] and later.vanished_pods == 0 and later.marks.pods == {}


def test_a_pod_that_lived_between_two_passes_is_billed_its_whole_counter_once() -> None:
    marks = compute(Marks(), snap(100.0)).marks
    short = X(UID, 900_000, started=120.0, exited=150.0)
    out = compute(marks, snap(160.0, exited=(short,)))
    (w,) = out.windows
    assert (w.cpu_ns, w.start, w.end, w.counter_start, w.counter_end) == (
        900_000,
        120.0,
        150.0,
        0,
        900_000,
    )
    assert split_by_container(w, {}) == {EXITED: 900_000}  # its containers were never seen
    billed = w.cpu_ns
    for at in (220.0, 280.0, 340.0):
        out = compute(out.marks, snap(at, exited=(short,)))
        billed += sum(x.cpu_ns for x in out.windows)
    assert billed == 900_000 and out.vanished_pods == 0


def test_an_exited_pod_that_started_before_the_previous_pass_is_a_baseline() -> None:
    old = X(UID, 900_000, started=50.0, exited=150.0)
    first = compute(Marks(), snap(100.0, exited=(old,)))  # the meter's very first pass
    assert first.windows == [] and first.marks.pods[UID].finished
    marks = compute(Marks(), snap(100.0)).marks
    out = compute(marks, snap(160.0, exited=(old,)))
    assert out.windows == [] and out.marks.pods[UID].cpu_ns == 900_000
    assert compute(out.marks, snap(220.0)).vanished_pods == 0


def test_a_later_higher_reading_of_a_tombstone_bills_only_the_difference() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1)]))).marks
    m2 = compute(m1, snap(160.0, exited=(X(UID, 13_500, exited=140.0),))).marks
    (w,) = compute(m2, snap(220.0, exited=(X(UID, 13_600, exited=140.0),))).windows
    assert (w.cpu_ns, w.counter_start, w.counter_end) == (100, 13_500, 13_600)


def test_a_tombstone_older_than_the_mark_bills_nothing_and_is_not_final() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1)]))).marks
    out = compute(m1, snap(160.0, exited=(X(UID, 9_000, exited=90.0),)))
    assert out.windows == [] and out.marks.pods[UID] == m1.pods[UID]
    assert compute(out.marks, snap(220.0)).vanished_pods == 1


def test_a_pod_live_again_after_its_tombstone_goes_on_from_the_final_reading() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1)]))).marks
    m2 = compute(m1, snap(160.0, exited=(X(UID, 13_500, exited=140.0),))).marks
    out = compute(m2, snap(220.0, P(UID, 14_000, [C("b", 400, started=200.0)])))
    (w,) = out.windows
    assert (w.cpu_ns, w.start, w.live) == (500, 140.0, {"b": 400})
    assert not out.marks.pods[UID].finished


def test_a_pod_listed_live_and_exited_in_one_snapshot_is_read_once() -> None:
    m1 = compute(Marks(), snap(100.0, P(UID, 10_000, [C("a", 1)]))).marks
    both = snap(160.0, P(UID, 12_000, [C("a", 2)]), exited=(X(UID, 11_000),))
    (w,) = compute(m1, both).windows
    assert (w.cpu_ns, w.counter_end) == (2_000, 12_000)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(step, max_size=8),
    st.integers(0, 10**15),
    st.integers(0, 10**12),
    st.lists(st.integers(0, 10**6), max_size=3),
)
def test_an_exiting_pod_is_billed_exactly_up_to_its_final_reading(
    steps: list[tuple[list[int], list[bool], int]],
    base: int,
    last: int,
    rereads: list[int],
) -> None:
    """Live passes, then the pod's last CPU and exit; its tombstone is listed in several
    snapshots, each reading at least the one before (the extractor re-reads it while the
    cgroup is there); then it ages out."""
    pod = base
    marks = compute(Marks(), snap(0.0, P(UID, pod, [C("c", 0)]))).marks
    billed = 0
    n = 0
    for n, (burns, _, extra) in enumerate(steps, start=1):
        pod += sum(burns) + extra
        out = compute(marks, snap(float(n), P(UID, pod, [C("c", 0)])))
        billed += sum(w.cpu_ns for w in out.windows)
        marks = out.marks
    pod += last
    for k, more in enumerate([0, *rereads], start=1):
        pod += more
        tomb = X(UID, pod, started=-1.0, exited=n + 0.5)
        out = compute(marks, snap(float(n + k), exited=(tomb,)))
        billed += sum(w.cpu_ns for w in out.windows)
        assert out.vanished_pods == 0
        marks = out.marks
    out = compute(marks, snap(float(n + len(rereads) + 2)))
    assert out.vanished_pods == 0 and out.marks.pods == {}
    assert billed == pod - base
