"""Exact per-interval usage from cumulative counters (exporter.meter.deltas).

First sight is a baseline unless the pod started after the previous poll, a decrease is
a reset, the pod cgroup keeps exited containers' CPU, an exited pod's final reading is
billed once, a pod missing from a snapshot keeps its mark, and intervals tile a pod's
life on the boot clock so runtime adds up exactly.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.meter.deltas import (
    MARK_RETENTION_NS,
    ContainerUse,
    Marks,
    Outcome,
    PodReading,
    compute,
)
from tests.support.meter_snapshots import C, E, P, X, snap

UID = "5b0e6c1a-0000-4000-8000-000000000001"
S = 10**9


def one(out: Outcome) -> PodReading:
    (r,) = out.readings
    return r


def marks_at(at: float, *pods: P) -> Marks:
    return compute(Marks(), snap(at, *pods)).marks


def test_first_sight_is_a_baseline_then_the_delta_is_the_difference() -> None:
    first = compute(Marks(), snap(100.0, P(UID, 5_000, [C("a", 4_000)])))
    assert first.readings == []
    r = one(compute(first.marks, snap(160.0, P(UID, 7_500, [C("a", 6_000)]))))
    assert (r.cpu_ns, r.start_at, r.end_at) == (2_500, 100.0, 160.0)
    assert (r.counter_start, r.counter_end) == (5_000, 7_500)
    assert r.containers["a"].cpu_ns == 2_000 and r.remainder_ns == 500
    assert r.duration_ns == r.runtime_ns == 60 * S  # the pod and its container ran throughout


def test_a_pod_started_inside_the_window_is_billed_its_whole_counter() -> None:
    marks = marks_at(100.0)
    out = compute(marks, snap(160.0, P(UID, 900_000, [C("short", 880_000, started=130.0)])))
    r = one(out)
    assert (r.cpu_ns, r.containers["short"].cpu_ns, r.counter_start) == (900_000, 880_000, 0)
    assert r.start_at == 130.0 and r.duration_ns == r.runtime_ns == 30 * S


def test_a_pod_started_within_a_tick_after_the_poll_is_billed_from_zero() -> None:
    """Finding 1: process starts are truncated to a 10 ms tick; a pod that started 4 ms
    after the previous poll reads as started 6 ms before it and must still count as new
    (with the old whole-second btime it read 0.26 s early and lost its first poll)."""
    marks = marks_at(100.0)
    out = compute(marks, snap(110.0, P(UID, 500_000, [C("a", 480_000, started=99.994)])))
    assert one(out).cpu_ns == 500_000


def test_a_pod_started_after_the_baseline_but_missed_since_is_billed_from_zero() -> None:
    """The meter has marked every pod since its first poll: one it never saw (its first
    processes came just after a pass read them, the extractor was away) was never billed."""
    marks = compute(marks_at(100.0), snap(110.0)).marks
    out = compute(marks, snap(120.0, P(UID, 70_000, [C("a", 60_000, started=105.0)])))
    assert one(out).cpu_ns == 70_000


def test_a_pod_whose_mark_expired_is_never_new_again() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1, started=50.0)]))
    later = 101.0 + MARK_RETENTION_NS / S
    gone = compute(m1, snap(later))
    assert UID in gone.marks.retired
    back = compute(gone.marks, snap(later + 10, P(UID, 90_000, [C("b", 5, started=later + 5)])))
    assert back.readings == [] and back.marks.pods[UID].cpu_ns == 90_000
    assert UID not in back.marks.retired


def test_an_old_pod_seen_for_the_first_time_is_not_billed_its_past() -> None:
    marks = marks_at(100.0)
    out = compute(marks, snap(160.0, P(UID, 900_000, [C("old", 880_000, started=50.0)])))
    assert out.readings == []
    assert out.marks.pods[UID].cpu_ns == 900_000


def test_a_decrease_is_a_reset_counted_only_if_the_container_is_new() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 8_000, started=10.0)]))
    out = compute(m1, snap(160.0, P(UID, 12_000, [C("a", 300, started=120.0)])))
    assert out.resets == 1 and one(out).containers["a"].cpu_ns == 300
    out = compute(m1, snap(160.0, P(UID, 12_000, [C("a", 300, started=10.0)])))
    assert out.resets == 1 and one(out).containers["a"].cpu_ns == 0
    assert out.marks.pods[UID].containers["a"].cpu_ns == 300


def test_a_recreated_pod_cgroup_starts_a_new_series() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 8_000, started=10.0)]))
    out = compute(m1, snap(160.0, P(UID, 700, [C("b", 600, started=130.0)])))
    r = one(out)
    assert (r.series, r.cpu_ns, r.counter_start, r.counter_end) == (1, 700, 0, 700)
    assert out.resets == 1


def test_an_exited_container_is_the_pod_delta_minus_the_live_ones() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("app", 4_000), C("job", 5_000, name="job")]))
    r = one(compute(m1, snap(160.0, P(UID, 13_400, [C("app", 4_400)]))))
    assert r.cpu_ns == 3_400 and r.containers["app"].cpu_ns == 400
    # no record of its end (no exit watcher): the vanished container gets the remainder
    assert r.containers["job"] == ContainerUse(name="job", cpu_ns=3_000) and r.remainder_ns == 0


def test_an_ended_run_gets_its_own_final_counter_and_its_exact_runtime() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("app", 4_000), C("job", 5_000, name="job")]))
    gone = E("job", UID, started=0.0, exited=137.5, cpu=8_000, name="job")
    r = one(compute(m1, snap(160.0, P(UID, 13_400, [C("app", 4_400)]), ended=(gone,))))
    assert r.containers["job"].cpu_ns == 3_000 and r.containers["app"].cpu_ns == 400
    assert r.remainder_ns == 0
    assert r.containers["job"].runtime_ns == int(37.5 * S)
    assert r.runtime_ns == 60 * S + int(37.5 * S)


def test_a_containers_run_counts_from_its_cgroup_filling_or_its_earliest_process() -> None:
    """A pass can meet a container first through a later process (its first one joined
    the cgroup after the pass read it): the watcher's fill time, else the earliest start
    ever seen, is its start, so no running time is lost."""
    marks = marks_at(100.0)
    r = one(compute(marks, snap(110.0, P(UID, 500, [C("a", 400, started=108.0, filled=103.0)]))))
    assert r.runtime_ns == 7 * S and r.start_at == 103.0
    m1 = compute(marks, snap(110.0, P(UID, 500, [C("a", 400, started=103.0)]))).marks
    later = one(compute(m1, snap(120.0, P(UID, 900, [C("a", 800, started=118.0)]))))
    assert later.runtime_ns == 10 * S  # its sh is missing from this pass: still running


def test_a_container_seen_running_and_ended_in_one_snapshot_is_counted_once() -> None:
    m1 = marks_at(100.0, P(UID, 1_000, [C("a", 500, started=90.0)]))
    both = snap(110.0, P(UID, 1_800, [C("a", 900)]), ended=(E("a", UID, 90.0, 106.0, 1_100),))
    r = one(compute(m1, both))
    assert r.runtime_ns == 6 * S and r.containers["a"].cpu_ns == 600


def test_the_container_split_is_never_negative() -> None:
    """Finding 5: containers read a moment after their pod can add up to more than the
    pod's delta; the split is scaled down to it instead of a negative remainder."""
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1_000), C("b", 1_000)]))
    r = one(compute(m1, snap(160.0, P(UID, 10_100, [C("a", 1_070), C("b", 1_060)]))))
    shares = [u.cpu_ns for u in r.containers.values()]
    assert r.remainder_ns == 0 and all(s >= 0 for s in shares)
    assert sum(shares) == r.cpu_ns == 100


def test_a_pod_missing_from_a_snapshot_keeps_its_mark_and_is_not_billed_twice() -> None:
    """Finding 2: a sandbox-less pod between two containers is in neither list for one
    snapshot. Its mark must survive, so the next reading bills the difference, not the
    whole counter again (the new container started after that snapshot looked new)."""
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 9_000, started=50.0)]))
    gap = compute(m1, snap(110.0))
    assert gap.readings == [] and gap.lost_pods == 0 and UID in gap.marks.pods
    back = compute(gap.marks, snap(120.0, P(UID, 10_500, [C("b", 400, started=115.0)])))
    r = one(back)
    assert (r.cpu_ns, r.counter_start, r.start_at) == (500, 10_000, 100.0)
    assert r.containers["b"].cpu_ns == 400 and r.containers["b"].runtime_ns == 5 * S


def test_a_mark_missing_longer_than_a_tombstone_lives_is_lost_and_counted() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)]))
    kept = compute(m1, snap(100.0 + MARK_RETENTION_NS / S))
    assert UID in kept.marks.pods and kept.lost_pods == 0
    gone = compute(kept.marks, snap(101.0 + MARK_RETENTION_NS / S))
    assert gone.lost_pods == 1 and gone.marks.pods == {}


def test_an_unreadable_pod_counter_waits_instead_of_losing_exited_cpu() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1_000)]))
    m2 = compute(m1, snap(160.0, P(UID, None, [C("a", 1_500)])))
    assert m2.readings == [] and m2.marks.pods[UID].cpu_ns == 10_000
    r = one(compute(m2.marks, snap(220.0, P(UID, 12_000, [C("a", 1_600)]))))
    assert (r.cpu_ns, r.start_at) == (2_000, 100.0)
    assert r.containers["a"].cpu_ns == 600


def test_sandbox_cpu_is_left_to_the_pod_remainder() -> None:
    pods = [C("pause", None, sandbox=True), C("app", 100)]
    m1 = marks_at(100.0, P(UID, 1_000, pods))
    r = one(compute(m1, snap(160.0, P(UID, 1_300, [pods[0], C("app", 200)]))))
    assert set(r.containers) == {"app"} and r.remainder_ns == 200


def test_a_wall_clock_stepped_back_changes_nothing() -> None:
    """Finding 6: the meter measures on the boot clock; a wall clock set back an hour
    neither stops it nor makes an interval negative."""
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)]))
    r = one(compute(m1, snap(110.0, P(UID, 10_700, [C("a", 2)]), wall_step=-3600.0)))
    assert r.cpu_ns == 700 and r.duration_ns == 10 * S and r.end_at == 110.0 - 3600.0


def test_after_a_reboot_every_pod_is_new() -> None:
    m1 = marks_at(100.0, P(UID, 10**9, [C("a", 1)]))
    other = "7b0e6c1a-0000-4000-8000-000000000002"
    out = compute(m1, snap(50.0, P(other, 5_000, [C("b", 4_000, started=20.0)]), boot_id="b"))
    assert one(out).cpu_ns == 5_000 and out.lost_pods == 1 and UID not in out.marks.pods


def test_user_and_system_time_are_deltas_too() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)], user=6_000, system=4_000))
    r = one(compute(m1, snap(160.0, P(UID, 13_000, [C("a", 1)], user=7_900, system=5_100))))
    assert (r.cpu_ns, r.user_ns, r.system_ns) == (3_000, 1_900, 1_100)


def test_memory_is_integrated_over_time_and_the_peak_seen_when_it_rises() -> None:
    m1 = marks_at(100.0, P(UID, 1, [C("a", 1)], working_set=1_000, peak=5_000))
    r = one(compute(m1, snap(110.0, P(UID, 2, [C("a", 1)], working_set=3_000, peak=5_000))))
    assert r.working_set_byte_ns == 2_000 * 10 * S  # the trapezoid of 1000 → 3000 over 10 s
    assert r.memory_peak is None  # the high-water mark did not move: not this interval's
    r = one(compute(m1, snap(110.0, P(UID, 2, [C("a", 1)], working_set=3_000, peak=9_000))))
    assert r.memory_peak == 9_000


def test_restarts_are_runs_of_a_name_that_ran_before() -> None:
    m1 = marks_at(100.0, P(UID, 1_000, [C("a1", 100, started=90.0, name="app")]))
    runs = (
        E("a1", UID, started=90.0, exited=103.0, cpu=150, name="app"),
        E("a2", UID, started=104.0, exited=105.0, cpu=50, name="app"),
    )
    now = P(UID, 1_400, [C("a3", 30, started=108.0, name="app")])
    r = one(compute(m1, snap(110.0, now, ended=runs)))
    assert r.restarts == 2
    assert r.runtime_ns == 3 * S + 1 * S + 2 * S


def test_a_pod_seen_before_that_exits_is_billed_mark_to_final_once() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 9_000, name="app")]))
    gone = X(UID, 13_500, started=50.0, exited=140.0)
    out = compute(m1, snap(160.0, exited=(gone,)))
    r = one(out)
    assert (r.cpu_ns, r.start_at, r.end_at, r.finished) == (3_500, 100.0, 140.0, True)
    assert r.duration_ns == 40 * S and out.marks.pods[UID].finished
    again = compute(out.marks, snap(220.0, exited=(gone,)))
    assert again.readings == [] and again.lost_pods == 0


def test_a_pod_that_lived_between_two_passes_is_billed_its_whole_counter_once() -> None:
    marks = marks_at(100.0)
    short = X(UID, 900_000, started=120.0, exited=150.0)
    runs = (E("j", UID, started=120.5, exited=149.5, cpu=880_000, name="job"),)
    out = compute(marks, snap(160.0, exited=(short,), ended=runs))
    r = one(out)
    assert (r.cpu_ns, r.start_at, r.end_at, r.counter_start) == (900_000, 120.0, 150.0, 0)
    assert r.containers["j"].cpu_ns == 880_000 and r.remainder_ns == 20_000
    assert r.duration_ns == 30 * S and r.runtime_ns == 29 * S
    billed = r.cpu_ns
    for at in (220.0, 280.0, 340.0):
        out = compute(out.marks, snap(at, exited=(short,), ended=runs))
        billed += sum(x.cpu_ns + x.runtime_ns for x in out.readings)
    assert billed == 900_000 and out.lost_pods == 0


def test_an_exited_pod_that_started_before_the_previous_pass_is_a_baseline() -> None:
    old = X(UID, 900_000, started=50.0, exited=150.0)
    first = compute(Marks(), snap(100.0, exited=(old,)))
    assert first.readings == [] and first.marks.pods[UID].finished
    out = compute(marks_at(100.0), snap(160.0, exited=(old,)))
    assert out.readings == [] and out.marks.pods[UID].cpu_ns == 900_000


def test_a_tombstone_older_than_the_mark_bills_nothing() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)]))
    out = compute(m1, snap(160.0, exited=(X(UID, 9_000, exited=90.0),)))
    assert out.readings == [] and out.marks.pods[UID].cpu_ns == 10_000
    assert not out.marks.pods[UID].finished


def test_a_pod_live_again_after_its_tombstone_goes_on_from_the_final_reading() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)]))
    m2 = compute(m1, snap(160.0, exited=(X(UID, 13_500, exited=140.0),))).marks
    out = compute(m2, snap(220.0, P(UID, 14_000, [C("b", 400, started=200.0)])))
    r = one(out)
    assert r.cpu_ns == 500 and r.containers["b"].cpu_ns == 400
    assert not out.marks.pods[UID].finished


def test_a_pod_listed_live_and_exited_in_one_snapshot_is_read_once() -> None:
    m1 = marks_at(100.0, P(UID, 10_000, [C("a", 1)]))
    both = snap(160.0, P(UID, 12_000, [C("a", 2)]), exited=(X(UID, 11_000),))
    r = one(compute(m1, both))
    assert (r.cpu_ns, r.counter_end) == (2_000, 12_000)


# Exactness over any history: passes where containers burn CPU, exit (their final reading
# listed as ended runs), restart under the same name, or go missing from a snapshot; then
# the pod exits and its tombstone repeats. Billed CPU must equal the pod counter's change
# since its baseline, runtime the containers' running time, and nothing may be negative.
step = st.tuples(
    st.lists(st.integers(0, 10**11), min_size=2, max_size=2),
    st.lists(st.booleans(), min_size=2, max_size=2),
    st.integers(0, 10**8),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=12), st.integers(0, 10**14), st.integers(0, 10**9))
def test_billed_usage_equals_the_counters_and_the_runs_exactly(
    steps: list[tuple[list[int], list[bool], int, bool]], base: int, last: int
) -> None:
    pod = base
    generation = {0: 0, 1: 0}
    counters = {0: 0, 1: 0}
    started = {0: 0.0, 1: 0.0}
    ended: list[E] = []

    def live() -> list[C]:
        return [C(f"c{i}-{generation[i]}", counters[i], started[i], f"c{i}") for i in (0, 1)]

    first = t = counted = 10.0
    marks = compute(Marks(), snap(t, P(UID, pod, live()))).marks
    billed_cpu = billed_runtime = 0

    def add(out: Outcome) -> None:
        nonlocal billed_cpu, billed_runtime
        for r in out.readings:
            assert r.cpu_ns >= 0 and r.remainder_ns >= 0 and r.duration_ns >= 0
            assert all(u.cpu_ns >= 0 and u.runtime_ns >= 0 for u in r.containers.values())
            assert sum(u.cpu_ns for u in r.containers.values()) + r.remainder_ns == r.cpu_ns
            billed_cpu += r.cpu_ns
            billed_runtime += r.runtime_ns

    for burns, restarts, extra, missing in steps:
        t += 10.0
        for i in (0, 1):
            counters[i] += burns[i]
            pod += burns[i]
            if restarts[i]:  # ended at t-4, its successor started at t-2
                run = E(f"c{i}-{generation[i]}", UID, started[i], t - 4.0, counters[i], f"c{i}")
                ended.append(run)
                generation[i] += 1
                counters[i], started[i] = 0, t - 2.0
        pod += extra
        if missing:  # in neither list: its reading comes with a later snapshot
            out = compute(marks, snap(t, ended=tuple(ended)))
            add(out)
            marks = out.marks
            continue
        out = compute(marks, snap(t, P(UID, pod, live()), ended=tuple(ended)))
        add(out)
        marks, counted = out.marks, t
    pod += last
    for k in range(3):
        tomb = X(UID, pod, started=0.0, exited=t + 1.0)
        out = compute(marks, snap(t + 2.0 + k, exited=(tomb,), ended=tuple(ended)))
        add(out)
        marks = out.marks
    assert billed_cpu == pod - base
    # every ended run from the baseline on, and the live ones up to their last reading
    expected = sum(round((e.exited - max(e.started or 0.0, first)) * S) for e in ended)
    expected += sum(max(round((counted - max(started[i], first)) * S), 0) for i in (0, 1))
    assert billed_runtime == expected
