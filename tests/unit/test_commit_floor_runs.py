"""The commit floor's counts and commit targets against a plain per-record model, for
records in any order and in increasing runs."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from flasfka.commit_floor import CommitFloor
from flasfka.records import Record


class Assigned:
    assignment = frozenset({0, 1, 2})

    def commit_offsets(self, ends):  # pragma: no cover - not called here
        raise AssertionError


def record(partition: int, offset: int) -> Record:
    return Record("t", partition, offset, None, None, b"v", None)


#: One partition's offsets in increasing order, as a fetch hands them over: the floor then
#: finds a partition's lowest pending offset without a min() (see _note_order).
runs = st.tuples(st.integers(0, 2), st.lists(st.integers(0, 40), unique=True).map(sorted)).map(
    lambda run: [(run[0], offset) for offset in run[1]]
)

batches = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["deliver", "acknowledge", "pend"]),
            st.lists(st.tuples(st.integers(0, 2), st.integers(0, 15)), max_size=12),
        ),
        st.tuples(st.sampled_from(["deliver", "acknowledge"]), runs),
    ),
    max_size=25,
)


@given(batches)
@example([("deliver", [(0, 5), (0, 6), (0, 3)])])  # a run that is not increasing
@example([("deliver", [(0, 5)]), ("deliver", [(0, 3)])])  # a run below the one before
@example([("deliver", [(0, 5)]), ("acknowledge", [(0, 5)]), ("deliver", [(0, 3), (0, 4)])])
def test_deliver_and_acknowledge_count_as_one_record_at_a_time(steps):
    floor = CommitFloor(Assigned())
    pending: dict[tuple[int, int], int] = {}
    ends: dict[int, int] = {}
    for operation, keys in steps:
        records = [record(p, o) for p, o in keys]
        if operation == "deliver":
            expected = []
            for key in keys:
                pending[key] = pending.get(key, 0) + 1
                expected.append(pending[key])
                ends[key[0]] = max(ends.get(key[0], 0), key[1] + 1)
            assert floor.deliver(records) == expected
        elif operation == "pend":  # a failed commit: pending again, deliveries as counted
            for key in keys:
                pending[key] = pending.get(key, 0)
            floor.pend(records, dict(pending))
        else:
            expected_done = []
            for r, key in zip(records, keys, strict=True):
                if key in pending:
                    expected_done.append((r, pending.pop(key)))
            assert floor.acknowledge(records) == expected_done
        for partition in range(3):
            lowest = min((o for p, o in pending if p == partition), default=None)
            assert floor._target(partition) == (
                lowest if lowest is not None else ends.get(partition)
            )
        assert floor.any_pending() == bool(pending)
