"""Unit tests of the input checks and the rendering of values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flasfka.errors import InvalidInput
from flasfka.http.parsing import check_group, check_topic, parse_limit, parse_messages
from flasfka.http.rendering import render_values
from flasfka.records import Record


@pytest.mark.parametrize("topic", ["a", "A.b_c-9", "x" * 249, "..."])
def test_legal_topics(topic):
    assert check_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", ".", "..", "x" * 250, "a b", "é", "a/b", "a\x00"])
def test_illegal_topics(topic):
    with pytest.raises(InvalidInput):
        check_topic(topic)


@pytest.mark.parametrize("raw, expected", [(None, 100), (b"1", 1), (b"500", 500), (b"07", 7)])
def test_limits(raw, expected):
    assert parse_limit(raw, 100, 500) == expected


@pytest.mark.parametrize("raw", [b"0", b"501", b"-1", b"", b"1e3", b"\xff", "٣".encode()])
def test_bad_limits(raw):
    with pytest.raises(InvalidInput, match="from 1 to 500"):
        parse_limit(raw, 100, 500)


@given(st.lists(st.text()))
def test_any_list_of_strings_round_trips(messages):
    import json

    body = json.dumps({"messages": messages}).encode()
    assert parse_messages(body) == [m.encode() for m in messages]


@given(st.binary())
def test_random_bodies_parse_or_raise_bad_request(body):
    try:
        result = parse_messages(body)
    except InvalidInput as e:
        assert "messages" in e.message
    else:
        assert all(isinstance(m, bytes) for m in result)


def record(value):
    return Record("t", 0, 0, None, None, value, None)


def test_render_values_keeps_every_value():
    records = [record(b"text \xc3\xa9"), record(None), record(b"\x80\x81")]
    assert render_values(records) == ["text é", None, {"base64": "gIE="}]
    assert render_values([record(b"a"), record(b"")]) == ["a", ""]


@pytest.mark.parametrize("group", [" ", "\t", "\n", "\x0b", "\x0c", "\r", " \r\n"])
def test_groups_librdkafka_would_take_for_no_group_are_refused(group):
    with pytest.raises(InvalidInput, match="white space"):
        check_group(group)


@pytest.mark.parametrize("group", ["a", " a", "a ", "\u00a0", "a\x0cb", "x" * 255])
def test_legal_groups(group):
    assert check_group(group) == group
