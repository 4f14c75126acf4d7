"""Broker faults: the broker dies while clients POST and GET, then comes back on its address."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import pytest_twisted
import treq
from confluent_kafka import KafkaError
from twisted.internet import defer, threads

from flasfka.errors import Unavailable
from flasfka.kafka.errors import domain_error
from tests.support.helpers import get, read_topic, sleep
from tests.support.servers import unique

#: PRODUCE_TIMEOUT of the server under test; no POST may take much longer.
PRODUCE_TIMEOUT = 3.0
#: What a POST may take past PRODUCE_TIMEOUT (librdkafka checks timeouts about once a second).
SLACK = 2.5
#: Messages of each POST while the broker goes away: a 204 must mean all of them are written.
PER_POST = 20
#: Partitions of the topic under test; half the POSTs spread their messages over all of them.
PARTITIONS = 4
#: CONSUMER_JOIN_TIMEOUT of the server under test (a Tansu join takes ~3.6 s).
JOIN_TIMEOUT = 8.0
#: The most a GET may wait for a commit the broker cannot take (librdkafka: ~6 s measured).
COMMIT_WAIT = 10.0


@dataclass
class Outcome:
    """One POST: its messages, status, Retry-After, error body and duration."""

    messages: list[str]
    status: int
    retry_after: str | None
    error: str | None
    seconds: float


async def post_one(url: str, topic: str, messages: list[str], spread: bool = False) -> Outcome:
    """POST messages (spread: as record objects over partitions 0-3) and record what happened."""
    from twisted.internet import reactor

    started = reactor.seconds()
    elements: list[object] = list(messages)
    if spread:
        elements = [{"value": m, "partition": i % PARTITIONS} for i, m in enumerate(messages)]
    body = json.dumps({"messages": elements}).encode()
    response = await treq.post(f"{url}/{topic}/", data=body, persistent=False)
    content = await response.content()
    error = None
    if response.code != 204:
        error = json.loads(content)["error"]
    retry = response.headers.getRawHeaders("Retry-After")
    return Outcome(
        messages, response.code, retry[0] if retry else None, error, reactor.seconds() - started
    )


async def keep_posting(
    url: str, topic: str, name: str, stop: list[bool], spread: bool = False
) -> list[Outcome]:
    """POST numbered batches of PER_POST messages one after another until stop[0] is set."""
    outcomes: list[Outcome] = []
    number = 0
    while not stop[0]:
        batch = [f"{name}-{number}-{index}" for index in range(PER_POST)]
        outcomes.append(await post_one(url, topic, batch, spread))
        number += 1
        if outcomes[-1].status != 204:
            await sleep(0.2)
    return outcomes


def posted(outcomes: list[Outcome]) -> set[str]:
    """Every message of these POSTs."""
    return {message for outcome in outcomes for message in outcome.messages}


def check_outcomes(outcomes: list[Outcome]) -> None:
    """Every POST got 204 or a clear 503 with Retry-After, within the produce timeout."""
    for outcome in outcomes:
        assert outcome.status in (204, 503), outcome
        assert outcome.seconds <= PRODUCE_TIMEOUT + SLACK, outcome
        if outcome.status == 503:
            assert outcome.retry_after is not None and outcome.retry_after.isdigit(), outcome
            assert outcome.error, outcome


async def until_post_succeeds(url: str, topic: str, timeout: float) -> list[Outcome]:
    """POST until one gets 204 (the gateway recovered) or timeout; every attempt."""
    from twisted.internet import reactor

    attempts: list[Outcome] = []
    deadline = reactor.seconds() + timeout
    while reactor.seconds() < deadline:
        attempts.append(await post_one(url, topic, [f"probe-{len(attempts)}"]))
        if attempts[-1].status == 204:
            return attempts
        await sleep(0.5)
    raise AssertionError(
        f"no POST succeeded within {timeout} s after the broker came back; the last: "
        f"{attempts[-3:]}"
    )


async def read_group(url: str, topic: str, group: str, expected: set[str]) -> list[str]:
    """GET as group until every expected message arrived (or 30 s passed); all seen."""
    from twisted.internet import reactor

    seen: list[str] = []
    deadline = reactor.seconds() + 30.0
    while reactor.seconds() < deadline and not expected <= set(seen):
        status, body, _ = await get(url, f"/{topic}/{group}/?limit=1000")
        assert status == 200, body
        seen += body["messages"]
    return seen


@pytest_twisted.ensureDeferred
async def test_broker_loss_during_posts_and_recovery(own_broker, make_server):
    server = await make_server(
        HOSTS=[own_broker.address],
        PRODUCE_TIMEOUT=PRODUCE_TIMEOUT,
        CONSUMER_JOIN_TIMEOUT=JOIN_TIMEOUT,
        TOPIC_PARTITIONS=PARTITIONS,
    )
    topic = unique()

    # Before the kill: every 204 means the message is in Kafka, also for a POST whose
    # messages went to several partitions.
    stop = [False]
    posters = [keep_posting(server.url, topic, f"before{i}", stop, i % 2 == 1) for i in range(4)]
    running = defer.gatherResults([defer.ensureDeferred(p) for p in posters])
    await sleep(1.0)
    stop[0] = True
    before = [o for outcomes in await running for o in outcomes]
    assert before and all(o.status == 204 for o in before), before
    stored = {value.decode() for _, value in await read_topic(own_broker.address, topic)}
    assert posted(before) <= stored
    # A consumer that was a group member before the kill.
    member = unique("g")
    seen = await read_group(server.url, topic, member, posted(before))
    assert posted(before) <= set(seen)

    # The kill, with POSTs in flight: each ends in 204 or 503 + Retry-After, none hangs.
    stop = [False]
    posters = [keep_posting(server.url, topic, f"during{i}", stop, i % 2 == 1) for i in range(4)]
    running = defer.gatherResults([defer.ensureDeferred(p) for p in posters])
    await sleep(0.5)
    # Wait until the member fetched ahead some of these messages, then kill the broker.
    member_consumer = server.gateway.consumers.get(topic, member).member
    for _ in range(50):
        if member_consumer.buffered:
            break
        await sleep(0.1)
    assert member_consumer.buffered, "the member buffered nothing before the kill"
    await threads.deferToThread(own_broker.stop)
    # The member cannot commit what it takes now: its GET answers 503 (nothing is lost: the
    # messages stay uncommitted) or 200, in bounded time.
    from twisted.internet import reactor

    started = reactor.seconds()
    status, body, response = await get(server.url, f"/{topic}/{member}/")
    assert status in (200, 503), (status, body)
    if status == 503:
        assert response.headers.getRawHeaders("Retry-After")
    assert reactor.seconds() - started <= COMMIT_WAIT, (status, body)
    await sleep(2 * PRODUCE_TIMEOUT)
    stop[0] = True
    during = [o for outcomes in await running for o in outcomes]
    check_outcomes(during)
    assert any(o.status == 503 for o in during), "no POST noticed that the broker was gone"

    # A GET on a new group while the broker is away answers (an empty list, or 503) once the
    # join times out, instead of hanging.
    started = reactor.seconds()
    status, body, response = await get(server.url, f"/{topic}/{unique('g')}/")
    assert status in (200, 503), (status, body)
    if status == 503:
        assert response.headers.getRawHeaders("Retry-After")
    assert reactor.seconds() - started <= JOIN_TIMEOUT + SLACK

    # The broker returns on the same address (empty: Tansu keeps nothing): the same server
    # recovers by itself, POST and GET work again.
    await threads.deferToThread(own_broker.start)
    attempts = await until_post_succeeds(server.url, topic, timeout=30.0)
    check_outcomes(attempts)
    stop = [False]
    posters = [keep_posting(server.url, topic, f"after{i}", stop) for i in range(4)]
    running = defer.gatherResults([defer.ensureDeferred(p) for p in posters])
    await sleep(1.0)
    stop[0] = True
    after = [o for outcomes in await running for o in outcomes]
    assert after and all(o.status == 204 for o in after), [o for o in after if o.status != 204]
    stored = {value.decode() for _, value in await read_topic(own_broker.address, topic)}
    assert posted(after) <= stored
    expected = posted(after) | posted(attempts[-1:])
    # A new group, and the member from before the kill (the broker forgot the group and its
    # offsets), both read what was posted after the restart.
    for group in (unique("g"), member):
        seen = await read_group(server.url, topic, group, expected)
        assert expected <= set(seen), (group, expected - set(seen))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError._FATAL,
        KafkaError._WAIT_COORD,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
    ],
)
def test_temporary_kafka_errors_are_503(code):
    error = domain_error(KafkaError(code), "produce to 't'", True, 3.0)
    assert isinstance(error, Unavailable), error
    assert error.retry_after > 0
