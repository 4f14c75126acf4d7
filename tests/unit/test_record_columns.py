"""Records built column by column from a fetch, and the column helpers over them."""

from confluent_kafka import KafkaError, Message

from flasfka.kafka.conversion import records_of
from flasfka.records import Record, next_offsets, size_of


def _message(partition: int, offset: int, **fields: object) -> Message:
    return Message(topic="t", partition=partition, offset=offset, **fields)


def test_a_batch_without_errors_gives_every_field_of_every_message():
    messages = [
        _message(0, 5, value=b"v", key=b"k", headers=[("h", b"1"), ("h", None)], timestamp=(1, 9)),
        _message(1, 7, value=None, key=None, headers=None, timestamp=(0, -1)),
    ]
    records, ends, size, errors = records_of("t", messages)
    assert records == [
        Record("t", 0, 5, 9, b"k", b"v", [("h", b"1"), ("h", None)]),
        Record("t", 1, 7, -1, None, None, None),
    ]
    assert (records[0].topic, records[0].partition, records[0].offset) == ("t", 0, 5)
    assert (records[0].key, records[0].value, records[0].timestamp) == (b"k", b"v", 9)
    assert records[0].headers == [("h", b"1"), ("h", None)]
    assert (ends, size, errors) == ([], 2, [])


def test_partition_ends_and_errors_are_sorted_out_of_a_batch():
    messages = [
        _message(0, 1, value=b"abc", timestamp=(1, 3)),
        _message(1, 0, error=KafkaError(KafkaError._PARTITION_EOF)),
        _message(2, 0, error=KafkaError(KafkaError._TRANSPORT)),
        _message(0, 2, value=b"de", key=b"k", timestamp=(1, 4)),
    ]
    records, ends, size, errors = records_of("t", messages)
    assert [(r.partition, r.offset) for r in records] == [(0, 1), (0, 2)]
    assert ends == [1]
    assert size == 6
    assert len(errors) == 1


def test_sizes_count_values_and_keys_and_nulls_as_nothing():
    records = [
        Record("t", 0, 0, None, b"kk", b"vvv", None),
        Record("t", 0, 1, None, None, None, None),
    ]
    assert size_of(records) == sum(r.size for r in records) == 5


def test_next_offsets_are_past_the_highest_offset_of_each_partition_in_any_order():
    records = [
        Record("t", p, o, None, None, b"", None) for p, o in [(0, 9), (1, 3), (0, 4), (1, 5)]
    ]
    assert next_offsets(records) == {0: 10, 1: 6}
    assert next_offsets([]) == {}
