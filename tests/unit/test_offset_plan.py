"""The offset reset plan: exact new offsets per partition, clamping, lag."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stockworker.service.offset_plan import (
    PartitionOffsets,
    PlanError,
    ResetKind,
    ResetRequest,
    plan_reset,
)

GROUP, TOPIC = "stockworker", "stock.commands.v1"
MOMENT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

# committed / beginning / end per partition:
#  0: 40 of [10, 50)  1: none of [0, 30)  2: 5 of [20, 25) (retention passed it)  3: 7 of [7, 7)
STATES = [
    PartitionOffsets(0, committed=40, beginning=10, end=50),
    PartitionOffsets(1, committed=None, beginning=0, end=30),
    PartitionOffsets(2, committed=5, beginning=20, end=25),
    PartitionOffsets(3, committed=7, beginning=7, end=7),
]


def moves(request: ResetRequest, at_time: dict[int, int | None] | None = None) -> dict[int, int]:
    plan = plan_reset(GROUP, TOPIC, STATES, request, at_time)
    return {p.partition: p.new for p in plan.partitions}


def test_lag_is_end_minus_committed_and_from_the_beginning_without_a_commit() -> None:
    assert [s.lag for s in STATES] == [10, 30, 5, 0]
    assert PartitionOffsets(0, committed=60, beginning=0, end=50).lag == 0  # clamped at 0


def test_shift_back_clamps_at_the_beginning_and_says_so() -> None:
    plan = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=-35))
    assert {p.partition: p.new for p in plan.partitions} == {0: 10, 1: 0, 2: 20, 3: 7}
    first = plan.partitions[0]
    assert (first.current, first.new, first.reread, first.skip) == (40, 10, 30, 0)
    assert first.notes == ("5 is before the beginning 10: clamped to it",)
    # No commit: the shift starts where the group would read, the beginning.
    assert plan.partitions[1].notes[0] == "no committed offset: the group reads from the beginning"
    assert plan.reread == 30
    # Partition 1 has nothing committed yet (commit 0); 2 moves from 5 to 20; 3 stays.
    assert plan.new_offsets() == {0: 10, 1: 0, 2: 20}


def test_shift_forward_clamps_at_the_end_and_counts_skipped_records() -> None:
    plan = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=4))
    assert {p.partition: p.new for p in plan.partitions} == {0: 44, 1: 4, 2: 24, 3: 7}
    assert [p.skip for p in plan.partitions] == [4, 4, 4, 0]
    assert plan.skip == 12 and plan.reread == 0
    shifted = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=25))
    assert {p.partition: p.new for p in shifted.partitions} == {0: 50, 1: 25, 2: 25, 3: 7}
    assert shifted.partitions[0].notes == ("65 is past the end 50: clamped to it",)


def test_to_datetime_takes_kafkas_offsets_and_the_end_where_nothing_follows() -> None:
    at_time: dict[int, int | None] = {0: 33, 1: 12, 2: None, 3: None}
    plan = plan_reset(
        GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_DATETIME, moment=MOMENT), at_time
    )
    assert {p.partition: p.new for p in plan.partitions} == {0: 33, 1: 12, 2: 25, 3: 7}
    assert [(p.reread, p.skip) for p in plan.partitions] == [(7, 0), (0, 12), (0, 5), (0, 0)]
    assert plan.partitions[2].notes[-1] == "no record at or after that time: the end offset"
    assert "2026-11-23T10:00:00+00:00" in plan.request.describe()


def test_to_offset_for_all_and_per_partition() -> None:
    everywhere = ResetRequest(ResetKind.TO_OFFSET, offset=22)
    assert moves(everywhere) == {0: 22, 1: 22, 2: 22, 3: 7}
    some = ResetRequest(ResetKind.TO_OFFSET, offsets={0: 45, 2: 3})
    assert moves(some) == {0: 45, 2: 20}  # only the partitions named
    mixed = ResetRequest(ResetKind.TO_OFFSET, offset=1, offsets={0: 45})
    assert moves(mixed) == {0: 45, 1: 1, 2: 20, 3: 7}


def test_earliest_latest_and_a_partition_selection() -> None:
    assert moves(ResetRequest(ResetKind.TO_EARLIEST)) == {0: 10, 1: 0, 2: 20, 3: 7}
    assert moves(ResetRequest(ResetKind.TO_LATEST, partitions=(1, 0))) == {0: 50, 1: 30}


def test_unknown_partitions_and_missing_offsets_are_refused() -> None:
    with pytest.raises(PlanError, match=r"no partition 9 \(the topic has 4: 0 to 3\)"):
        plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_EARLIEST, partitions=(0, 9)))
    with pytest.raises(PlanError, match="no partition 4"):
        plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_OFFSET, offsets={4: 1}))
    with pytest.raises(PlanError, match="which --partition leaves out"):
        plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_OFFSET, (0,), offsets={1: 3}))
    with pytest.raises(PlanError, match="no offset given for partition 1"):
        plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_OFFSET, (0, 1), offsets={0: 3}))


def test_the_identity_names_the_moves_only() -> None:
    a = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_EARLIEST))
    b = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=-100))
    assert a.identity() == b.identity()  # the same moves, however they were asked for
    c = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=-1))
    assert a.identity() != c.identity()
    assert a.counts() == {"partitions": 4, "changed": 3, "reread": 30, "skip": 0}


def test_a_plan_that_skips_warns_and_needs_allow_skip() -> None:
    forward = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.SHIFT_BY, shift=4))
    assert forward.skip_warning() == (
        "warning: 12 command(s) will never be applied: the group moves past them unread "
        "(partition 0: 4, partition 1: 4, partition 2: 4)"
    )
    refusal = forward.skip_refusal(allow_skip=False)
    assert refusal is not None and "add --allow-skip" in refusal and "12 command(s)" in refusal
    assert forward.skip_refusal(allow_skip=True) is None
    latest = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_LATEST))
    assert latest.skip == 10 + 30 + 5
    assert latest.skip_refusal(allow_skip=False) is not None
    # Going back (or staying) skips nothing: no warning, nothing to allow.
    back = plan_reset(GROUP, TOPIC, STATES, ResetRequest(ResetKind.TO_EARLIEST))
    assert back.skip_warning() is None and back.skip_refusal(allow_skip=False) is None
