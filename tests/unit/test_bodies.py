"""Unit tests of the POST body forms: what each parses to, and the 400 each bad one gets."""

from __future__ import annotations

import pytest

from flasfka.errors import InvalidInput
from flasfka.http.bodies import parse_body
from flasfka.http.produce import check_idempotency_key, wants_offsets

JSON = b"application/json"
NDJSON = b"application/x-ndjson"


def fields(outgoing):
    return (outgoing.value, outgoing.key, outgoing.headers, outgoing.partition, outgoing.timestamp)


def test_strings_only_stay_on_the_seed_path():
    parsed = parse_body(b'{"messages": ["a", "\xc3\xa9"]}', None, b"k")
    assert parsed.values == [b"a", "é".encode()] and parsed.records is None


def test_record_objects_and_strings_mix_in_order():
    body = (
        b'{"messages": ["s", {"value": null}, {"value": {"base64": "AP8="}, "key": "k",'
        b' "headers": [{"key": "h", "value": "1"}, {"key": "h", "value": null}],'
        b' "partition": 2, "timestamp": 1700000000000}]}'
    )
    parsed = parse_body(body, JSON, None)
    assert [fields(r) for r in parsed.records] == [
        (b"s", None, None, -1, 0),
        (None, None, None, -1, 0),
        (b"\x00\xff", b"k", [("h", b"1"), ("h", None)], 2, 1700000000000),
    ]


def test_strings_of_a_mixed_body_keep_the_path_key():
    parsed = parse_body(b'{"messages": ["s", {"value": "o"}]}', None, b"pk")
    assert [r.key for r in parsed.records] == [b"pk", b"pk"]


def test_octet_stream_is_one_message_of_the_raw_bytes():
    raw = bytes(range(256))
    parsed = parse_body(raw, b"application/octet-stream", b"k")
    assert parsed.values == [raw]


def test_ndjson_is_one_element_per_line_blank_lines_skipped():
    parsed = parse_body(b'"a"\n\n{"value": "b", "partition": 1}\r\n"c"\n', NDJSON, None)
    assert [fields(r)[0] for r in parsed.records] == [b"a", b"b", b"c"]
    assert parsed.element(2) == "line 4"
    assert parse_body(b'"a"\n"b"', b"Application/X-NDJSON; charset=utf-8", None).values == [
        b"a",
        b"b",
    ]


@pytest.mark.parametrize(
    "element, says",
    [
        ('{"value": "x", "vlaue": 1}', 'message 1: unknown field "vlaue"'),
        ('{"key": "x"}', 'message 1: lacks "value"'),
        ('{"value": 5}', 'message 1 "value" must be a string, null or {"base64"'),
        ('{"value": {"base64": "!!"}}', 'message 1 "value": "base64" is not valid base64'),
        ('{"value": {"base64": "QQ=", "x": 1}}', 'message 1 "value" must be a string'),
        ('{"value": "x", "key": ["k"]}', 'message 1 "key" must be'),
        ('{"value": "x", "headers": {"a": "b"}}', 'message 1 "headers" must be a list'),
        ('{"value": "x", "headers": [{"key": 1, "value": "v"}]}', '"headers"[0] must be'),
        ('{"value": "x", "headers": [{"key": "k"}]}', 'message 1 "headers"[0] must be'),
        ('{"value": "x", "headers": [{"key": "k", "value": 2}]}', '"headers"[0] "value" must'),
        ('{"value": "x", "partition": -1}', 'message 1 "partition" must be an integer'),
        ('{"value": "x", "partition": true}', 'message 1 "partition" must be an integer'),
        ('{"value": "x", "partition": 1.5}', 'message 1 "partition" must be an integer'),
        ('{"value": "x", "partition": 1e99}', 'message 1 "partition" must be an integer'),
        ('{"value": "x", "timestamp": 0}', 'message 1 "timestamp" (milliseconds'),
        ("3", "message 1 is a JSON number, not a string or a record object"),
        ("null", "message 1 is a JSON null"),
    ],
)
def test_bad_elements_are_named_with_their_field(element, says):
    with pytest.raises(InvalidInput) as raised:
        parse_body(f'{{"messages": ["ok", {element}]}}'.encode(), None, None)
    assert says in raised.value.message


def test_integral_numbers_are_integers_as_in_json_schema():
    parsed = parse_body(
        b'{"messages": [{"value": "v", "partition": 2.0, "timestamp": 1e3}]}', None, None
    )
    assert (parsed.records[0].partition, parsed.records[0].timestamp) == (2, 1000)
    assert type(parsed.records[0].partition) is int


def test_a_key_in_both_path_and_object_is_refused():
    with pytest.raises(InvalidInput, match='message 0: "key" is given both in the path'):
        parse_body(b'{"messages": [{"value": "v", "key": null}]}', None, b"pk")


def test_a_bad_ndjson_line_is_named():
    body = b'"a"\n{"value": "b"}\n{"value": "c", "oops": 1}\n'
    with pytest.raises(InvalidInput, match='line 3: unknown field "oops"'):
        parse_body(body, NDJSON, None)
    with pytest.raises(InvalidInput, match="line 2 is not valid JSON"):
        parse_body(b'"a"\n"b\n"c"\n', NDJSON, None)
    with pytest.raises(InvalidInput, match="line 1 is a JSON array"):
        parse_body(b'["a"]\n', NDJSON, None)


@pytest.mark.parametrize(
    "headers, wanted",
    [
        (None, False),
        ([b"return=representation"], True),
        ([b'respond-async, Return = "representation"; x=1'], True),
        ([b"return=minimal"], False),
        ([b"wait=5", b"return=representation"], True),
        ([b"returnx=representation"], False),
    ],
)
def test_prefer_return_representation(headers, wanted):
    assert wants_offsets(headers) is wanted


def test_idempotency_keys_are_printable_ascii():
    assert check_idempotency_key(b"abc-123 x") == "abc-123 x"
    for bad in (b"", b"x" * 256, b"\xff", b"a\tb"):
        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            check_idempotency_key(bad)
