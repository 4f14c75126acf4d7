"""The commit floor's counts against a plain per-record model, for records in any order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flasfka.commit_floor import CommitFloor
from flasfka.records import Record


class Assigned:
    assignment = frozenset({0, 1, 2})

    def commit_offsets(self, ends):  # pragma: no cover - not called here
        raise AssertionError


def record(partition: int, offset: int) -> Record:
    return Record("t", partition, offset, None, None, b"v", None)


batches = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "acknowledge"]),
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 15)), max_size=12),
    ),
    max_size=25,
)


@given(batches)
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
