"""A member's read-ahead against a plain list: the same records come out in the same order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flasfka.kafka.read_ahead import ReadAhead
from flasfka.records import Record


def records(start: int, count: int, partition: int = 0) -> list[Record]:
    return [Record("t", partition, o, None, None, b"v", None) for o in range(start, start + count)]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 7)),
        st.tuples(st.just("prepend"), st.integers(0, 7)),
        st.tuples(st.just("take"), st.integers(0, 12)),
        st.tuples(st.just("remove_odd"), st.just(0)),
    ),
    max_size=40,
)


@given(operations)
def test_read_ahead_behaves_as_a_list(steps):
    buffer, model = ReadAhead(), []
    offset = 0
    for operation, n in steps:
        if operation == "append":
            batch = records(offset, n)
            offset += n
            buffer.append(batch)
            model.extend(batch)
        elif operation == "prepend":
            batch = records(offset, n, partition=1)
            offset += n
            buffer.prepend(batch)
            model[:0] = batch
        elif operation == "take":
            assert buffer.take(n) == model[:n]
            del model[:n]
        else:
            removed = buffer.remove_if(lambda r: r.offset % 2 == 1)
            assert removed == [r for r in model if r.offset % 2 == 1]
            model = [r for r in model if r.offset % 2 == 0]
        assert len(buffer) == len(model)
        assert list(buffer) == model
    assert buffer.clear().records() == model
    assert len(buffer) == 0 and buffer.take(5) == []


def test_a_whole_batch_is_taken_without_a_copy_and_the_rest_is_untouched():
    buffer = ReadAhead()
    first, second = records(0, 3), records(3, 3)
    buffer.append(first)
    buffer.append(second)
    taken = buffer.take(3)
    assert taken is first
    assert buffer.take(2) == second[:2] and buffer.take(10) == second[2:]
    assert second == records(3, 3)  # the batch taken in parts was not changed
