"""Unit tests of the Idempotency-Key store on a Clock: replay, conflicts, expiry, bounds."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from flasfka.errors import InFlight, KeyReused, Unavailable
from flasfka.idempotency import IdempotencyStore, StoredAnswer, fingerprint

ANSWER = StoredAnswer(204, (), b"")


def store(clock, max_keys=10, max_bytes=10_000):
    return IdempotencyStore(clock, ttl=60.0, max_keys=max_keys, max_bytes=max_bytes)


def test_a_retry_replays_the_first_answer_until_it_expires():
    clock = Clock()
    keys = store(clock)
    digest = fingerprint(b"topic", b"body")
    assert keys.claim("k", digest) is None
    keys.answered("k", ANSWER)
    clock.advance(59)
    assert keys.claim("k", digest) == ANSWER
    clock.advance(1)
    assert keys.claim("k", digest) is None  # expired: served as new


def test_another_body_is_422_and_in_flight_is_409():
    keys = store(Clock())
    assert keys.claim("k", fingerprint(b"a")) is None
    with pytest.raises(InFlight):
        keys.claim("k", fingerprint(b"a"))
    with pytest.raises(KeyReused):
        keys.claim("k", fingerprint(b"b"))
    keys.answered("k", ANSWER)
    with pytest.raises(KeyReused):
        keys.claim("k", fingerprint(b"b"))


def test_the_fingerprint_separates_its_parts():
    assert fingerprint(b"ab", b"c") != fingerprint(b"a", b"bc")


def test_a_failed_request_releases_its_key():
    keys = store(Clock())
    assert keys.claim("k", fingerprint(b"a")) is None
    keys.released("k")
    assert keys.claim("k", fingerprint(b"a")) is None


def test_the_oldest_answers_go_first_when_the_key_bound_is_reached():
    keys = store(Clock(), max_keys=2)
    for key in ("a", "b"):
        keys.claim(key, fingerprint(key.encode()))
        keys.answered(key, ANSWER)
    assert keys.claim("c", fingerprint(b"c")) is None
    assert len(keys) == 2
    assert keys.claim("b", fingerprint(b"b")) == ANSWER
    assert keys.claim("a", fingerprint(b"a")) is None  # dropped: served as new


def test_every_slot_in_flight_is_503():
    keys = store(Clock(), max_keys=1)
    keys.claim("a", fingerprint(b"a"))
    with pytest.raises(Unavailable, match="IDEMPOTENCY_MAX_KEYS"):
        keys.claim("b", fingerprint(b"b"))


def test_stored_bytes_are_bounded():
    keys = store(Clock(), max_bytes=1000)
    big = StoredAnswer(200, (), b"x" * 700)
    for key in ("a", "b"):
        keys.claim(key, fingerprint(key.encode()))
        keys.answered(key, big)
    assert keys.claim("a", fingerprint(b"a")) is None  # dropped for b
    assert keys.claim("b", fingerprint(b"b")) == big
    keys.claim("huge", fingerprint(b"h"))
    keys.answered("huge", StoredAnswer(200, (), b"x" * 2000))  # never kept
    assert keys.claim("huge", fingerprint(b"h")) is None
