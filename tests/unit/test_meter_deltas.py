"""Exact per-window CPU deltas from cumulative counters (exporter.meter.deltas).

Rules from shared/reference/cgroups.md section 8: first sight is a baseline, a decrease
is a reset, the pod cgroup keeps exited containers' CPU, a vanished pod loses only its
last partial window.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.meter.deltas import Marks, compute
from tests.unit.meter_snapshots import C, P, snap

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
