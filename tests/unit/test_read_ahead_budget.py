"""The read-ahead budget: equal parts, the floor every member keeps, reservations."""

from __future__ import annotations

from flasfka.kafka.budget import MIN_SHARE, ReadAheadBudget

MIB = 1024 * 1024


def test_members_share_the_budget_equally_within_their_own_bound():
    budget = ReadAheadBudget(64 * MIB)
    first = budget.join(16 * MIB)
    assert first.room == 16 * MIB  # alone: its own bound
    others = [budget.join(16 * MIB) for _ in range(7)]
    assert first.room == 8 * MIB  # eight members: 64 / 8 each
    for share in others:
        share.leave()
    assert first.room == 16 * MIB


def test_a_new_member_keeps_its_floor_when_early_ones_spent_the_budget():
    budget = ReadAheadBudget(32 * MIB)
    early = [budget.join(16 * MIB) for _ in range(2)]
    for share in early:
        share.use(16 * MIB)
    late = budget.join(16 * MIB)
    assert early[0].exhausted and early[1].exhausted
    assert late.room == MIN_SHARE
    assert late.reserve(10 * MIB) == MIN_SHARE
    assert late.exhausted
    assert budget.used == 32 * MIB + MIN_SHARE


def test_reservations_never_grant_more_than_the_room():
    budget = ReadAheadBudget(4 * MIB)
    a, b = budget.join(16 * MIB), budget.join(16 * MIB)
    assert a.reserve(10 * MIB) == 2 * MIB
    assert a.reserve(1) == 0
    assert b.reserve(3 * MIB) == 2 * MIB
    a.use(-2 * MIB)  # a GET took them
    assert a.room == 2 * MIB
    b.leave()
    assert budget.used == 0 and budget.members == 1


def test_a_member_that_left_counts_nothing_more():
    budget = ReadAheadBudget(4 * MIB)
    stays, leaves = budget.join(16 * MIB), budget.join(16 * MIB)
    stays.use(MIB)
    leaves.use(MIB)  # e.g. a stream's batch, released after its member closed
    leaves.leave()
    leaves.use(-MIB)
    assert leaves.reserve(MIB) == 0
    assert budget.used == MIB and budget.members == 1
