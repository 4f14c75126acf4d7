"""Fetched chunks and the Batches a stream takes: the same records, values, sizes and
commit offsets as the Records built from the same messages, however they are sliced."""

from __future__ import annotations

from confluent_kafka import Message
from hypothesis import given
from hypothesis import strategies as st

from flasfka.batches import Batch, RecordChunk
from flasfka.kafka.conversion import fetched_of, records_of
from flasfka.kafka.read_ahead import ReadAhead
from flasfka.records import next_offsets, size_of

_value = st.one_of(st.none(), st.binary(max_size=5))
# Runs of partitions as a fetch hands them over: each partition's offsets increase.
_fetches = st.lists(
    st.lists(st.tuples(st.integers(0, 3), _value, _value), max_size=12), min_size=1, max_size=6
)


def _messages(fetch: list[tuple[int, bytes | None, bytes | None]], first: int) -> list[Message]:
    return [
        Message(topic="t", partition=p, offset=first + i, key=k, value=v, timestamp=(1, first + i))
        for i, (p, k, v) in enumerate(fetch)
    ]


@given(_fetches, st.lists(st.integers(0, 15), max_size=10))
def test_batches_taken_from_fetched_chunks_equal_the_records_of_the_same_messages(fetches, takes):
    buffer, model = ReadAhead(), []
    for number, fetch in enumerate(fetches):
        messages = _messages(fetch, 100 * number)
        fetched, _, _ = fetched_of("t", messages)
        buffer.append(fetched)
        model.extend(records_of("t", messages)[0])
    for limit in takes:
        batch = buffer.take_batch(limit)
        expected, model = model[:limit], model[limit:]
        assert len(batch) == len(expected)
        assert batch.records() == expected
        assert batch.values() == [record.value for record in expected]
        assert batch.size == size_of(expected)
        assert batch.ends() == next_offsets(expected)
        assert len(buffer) == len(model)
    assert list(buffer) == model


def test_a_batch_of_fetched_and_put_back_records_ends_past_the_furthest_of_each():
    fetched, _, _ = fetched_of("t", _messages([(0, None, b"a"), (1, None, b"b")], 10))
    put_back = fetched_of("t", _messages([(0, None, b"c")], 5))[0].records()
    batch = Batch([RecordChunk(put_back), fetched])
    assert batch.ends() == {0: 11, 1: 12}
    assert batch.values() == [b"c", b"a", b"b"]
    assert Batch([]).ends() == {} and not Batch([])
