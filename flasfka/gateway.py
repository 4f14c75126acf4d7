"""What the HTTP routes ask of Kafka: produce a POST's messages, fetch a GET's records.

It owns the producer, the admin client and the group readers, and knows nothing of HTTP.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from flasfka.app.config import Config
from flasfka.consumers import ConsumerRegistry, GroupReader
from flasfka.cursors import CursorRef, CursorSigner
from flasfka.errors import Conflict, FlasfkaError, InvalidInput, TooLarge, Unavailable
from flasfka.kafka import (
    GroupMember,
    KafkaProducer,
    RdkafkaLogBridge,
    ReadAheadBudget,
    TopicAdmin,
    client_settings,
)
from flasfka.kafka.dead_letters import DeadLetterWriter
from flasfka.kafka.settings import message_max_bytes
from flasfka.leases import Lease, Leases
from flasfka.metrics import GatewayMetrics
from flasfka.reactor import ReactorLike, RunBlocking
from flasfka.records import Delivered, Outgoing, Record

log = Logger(namespace="flasfka.gateway")


class Gateway:
    """Produces and consumes for the web layer; owns the producer, admin and consumers."""

    def __init__(
        self,
        reactor: ReactorLike,
        config: Config,
        run_blocking: RunBlocking,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._run_blocking = run_blocking
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._producer_settings, self._consumer_settings, self._admin_settings = client_settings(
            config
        )
        # librdkafka's log lines go through twisted.logger, not raw to stderr.
        rdkafka_log = RdkafkaLogBridge(reactor.callFromThread, reactor.seconds)
        for settings in (self._producer_settings, self._consumer_settings, self._admin_settings):
            settings.setdefault("logger", rdkafka_log)
        self._message_max_bytes = message_max_bytes(self._producer_settings)
        self.read_ahead = ReadAheadBudget(config.CONSUMER_BUFFER_BUDGET)
        self.producer: KafkaProducer | None = None
        self.admin: TopicAdmin | None = None
        self.consumers = ConsumerRegistry(
            reactor,
            self._new_consumer,
            config.MAX_CONSUMERS,
            config.CONSUMER_IDLE_TIMEOUT,
            self._new_leases,
        )
        #: ?lease= of ack=explicit GETs: the default and the most (seconds).
        self.lease_default = config.CONSUMER_LEASE
        self.lease_max = config.CONSUMER_MAX_LEASE
        #: Signs the cursors of ack=explicit GETs (a secret of this process).
        self.cursors = CursorSigner()
        self._dead_letters = DeadLetterWriter(
            self._producer_settings, run_blocking, config.PRODUCE_TIMEOUT
        )
        self.stopping = False
        #: Why the last POST failed although the producer was connected (None after a success).
        self.produce_stalled: str | None = None
        self.produce_stalled_at = 0.0
        self.metrics.watch(
            consumers_open=lambda: len(self.consumers),
            broker_connected=lambda: int(self.producer is not None and self.producer.connected),
            read_ahead_bytes=lambda: self.read_ahead.used,
        )

    def start(self) -> None:
        """Create the Kafka clients (after twistd forked: librdkafka threads do not survive it)."""
        config = self._config
        self.admin = TopicAdmin(
            self._admin_settings,
            self._run_blocking,
            auto_create=config.AUTO_CREATE_TOPICS,
            partitions=config.TOPIC_PARTITIONS,
            replication_factor=config.TOPIC_REPLICATION_FACTOR,
            timeout=config.PRODUCE_TIMEOUT,
        )
        self.producer = KafkaProducer(
            self._reactor, self._producer_settings, config.PRODUCE_TIMEOUT
        )
        self.producer.start()

    def _new_consumer(self, topic: str, group: str) -> GroupMember:
        return GroupMember(
            self._reactor,
            self._consumer_settings,
            topic,
            group,
            buffer_messages=self._config.CONSUMER_BUFFER_MESSAGES,
            buffer_bytes=self._config.CONSUMER_BUFFER_BYTES,
            budget=self.read_ahead,
        )

    def _new_leases(self, member: GroupMember) -> Leases:
        config = self._config
        topic = member.topic

        def dead_letter(batch: list) -> object:
            return Deferred.fromCoroutine(self._write_dead_letters(topic, batch))

        return Leases(
            self._reactor,
            member,
            config.CONSUMER_MAX_LEASED,
            config.CONSUMER_MAX_DELIVERIES,
            dead_letter,  # type: ignore[arg-type]
            self.metrics,
        )

    async def _write_dead_letters(self, topic: str, batch: list) -> None:
        target = self._config.DEAD_LETTER_TOPIC.format(topic=topic)
        if self.admin is not None:
            ensuring = self.admin.ensure(target)
            if ensuring is not None:
                await ensuring
        await self._dead_letters.write(target, batch)

    def _check_running(self) -> None:
        if self.stopping:
            raise Unavailable("flasfka is shutting down", retry_after=1)
        if self.producer is None or self.admin is None:
            raise Unavailable("flasfka is starting", retry_after=1)

    async def produce(
        self,
        topic: str,
        values: list[bytes],
        key: bytes | None,
        create: bool = True,
        element: Callable[[int], str] = "message {}".format,
    ) -> None:
        """Send values to topic in order; return once the broker acknowledged all of them.

        create=False: a missing topic is NotPermitted instead of created. element names a
        message in the errors ("message 3", "line 4").
        """
        self._check_running()
        assert self.producer is not None and self.admin is not None
        key_size = len(key) if key else 0
        for index, value in enumerate(values):
            if len(value) + key_size > self._message_max_bytes:
                raise TooLarge(
                    f"{element(index)} is {len(value) + key_size} bytes with its key; the "
                    f"limit is {self._message_max_bytes} (message.max.bytes); nothing was sent"
                )
        if not values:
            return
        started = self._reactor.seconds()
        try:
            ensuring = self.admin.ensure(topic, create)
            if ensuring is not None:
                await ensuring
            # A POST without a key goes to one partition, so its messages are read in order.
            partition = -1 if key is not None else random.randrange(self.admin.partitions(topic))
            await self.producer.send(topic, values, key, partition)
        except FlasfkaError as e:
            self._note_failure(e)
            raise
        self._note_success(topic, len(values), started)

    async def produce_records(
        self,
        topic: str,
        records: list[Outgoing],
        offsets: bool = False,
        element: Callable[[int], str] = "message {}".format,
        create: bool = True,
    ) -> list[Delivered] | None:
        """Send records to topic in order; return once the broker acknowledged all of them.

        Checked before anything is sent: each record's size, and that its partition exists
        (element names a record in the errors). Records without a key or partition go to
        one partition picked for the POST, as the seed's messages without a key do. With
        offsets, returns where each record was written. create as for produce().
        """
        self._check_running()
        assert self.producer is not None and self.admin is not None
        limit = self._message_max_bytes
        for index, record in enumerate(records):
            size = record.size
            if size > limit:
                raise TooLarge(
                    f"{element(index)} is {size} bytes with its key and headers; the limit is "
                    f"{limit} (message.max.bytes); nothing was sent"
                )
        if not records:
            return [] if offsets else None
        started = self._reactor.seconds()
        try:
            ensuring = self.admin.ensure(topic, create)
            if ensuring is not None:
                await ensuring
            count = self.admin.partitions(topic)
            for index, record in enumerate(records):
                if record.partition >= count:
                    raise InvalidInput(
                        f'{element(index)} "partition": partition {record.partition} does not '
                        f"exist; topic {topic!r} has {count} (0 to {count - 1}); nothing was sent"
                    )
            delivered = await self.producer.send_records(
                topic, records, random.randrange(count), offsets
            )
        except FlasfkaError as e:
            self._note_failure(e)
            raise
        self._note_success(topic, len(records), started)
        return delivered

    def _note_failure(self, error: FlasfkaError) -> None:
        """Remember a POST that failed although the broker is connected (for /readyz)."""
        if isinstance(error, Unavailable) and self.producer is not None and self.producer.connected:
            self.produce_stalled = error.message
            self.produce_stalled_at = self._reactor.seconds()

    def _note_success(self, topic: str, count: int, started: float) -> None:
        self.produce_stalled = None
        self.metrics.produced(topic, count, self._reactor.seconds() - started)

    async def fetch(
        self,
        topic: str,
        group: str,
        limit: int,
        create: bool = True,
        timeout: float | None = None,
    ) -> list[Record]:
        """Up to limit messages of topic for group, committed before they are returned.

        create=False: a missing topic is NotPermitted instead of created. With timeout (a
        long poll), wait up to that many seconds after the group join for the first message.
        """
        reader = await self.reader(topic, group, create)
        config = self._config
        if timeout is None:
            await reader.member.wait_for(
                limit, config.CONSUMER_TIMEOUT, config.CONSUMER_JOIN_TIMEOUT
            )
            records = await reader.at_most_once.consume(limit)
        else:
            records = await self._long_poll(reader, limit, timeout)
        self.metrics.consumed(topic, len(records))
        return records

    async def reader(self, topic: str, group: str, create: bool = True) -> GroupReader:
        """The reader of (topic, group), its topic created first if need be (GETs, streams).

        create=False: a missing topic is NotPermitted instead of created.
        """
        self._check_running()
        assert self.admin is not None
        ensuring = self.admin.ensure(topic, create)
        if ensuring is not None:
            await ensuring
        return self.consumers.get(topic, group)

    async def _long_poll(self, reader: GroupReader, limit: int, timeout: float) -> list[Record]:
        """Wait up to timeout (after the join) for a first message, then gather up to limit.

        Once a message is there, the answer waits for limit of them or until none more arrive
        within CONSUMER_TIMEOUT. Records another GET of the group took meanwhile do not end
        the wait: it goes on until something is taken or timeout has passed. Every wait is
        cancellable: a client gone mid-wait takes nothing.
        """
        member = reader.member
        config = self._config
        clock = self._reactor
        await member.wait_for(1, 0, config.CONSUMER_JOIN_TIMEOUT)  # the join only
        deadline = clock.seconds() + timeout
        while True:
            await member.wait_for(1, max(0.0, deadline - clock.seconds()), 0)
            if member.buffered:
                first = clock.seconds()
                while member.buffered < limit and clock.seconds() < max(
                    deadline, first + config.CONSUMER_TIMEOUT
                ):
                    before = member.buffered
                    await member.wait_for(limit, config.CONSUMER_TIMEOUT, 0)
                    if member.buffered <= before:
                        break  # none more within CONSUMER_TIMEOUT (or others took them)
                records = await reader.at_most_once.consume(limit)
                if records:
                    return records
            if clock.seconds() >= deadline or member.draining:
                return []

    async def fetch_leased(
        self,
        topic: str,
        group: str,
        limit: int,
        lease_seconds: float,
        create: bool = True,
        timeout: float | None = None,
    ) -> tuple[Lease, str]:
        """Up to limit messages of topic for group, leased (not committed), and their cursor.

        create=False: a missing topic is NotPermitted instead of created. With timeout (a
        long poll), wait up to that many seconds after the join for a first message when
        nothing is due for redelivery (one wait: records another GET took meanwhile make it
        answer what is left, possibly nothing).
        """
        self._check_running()
        assert self.admin is not None
        ensuring = self.admin.ensure(topic, create)
        if ensuring is not None:
            await ensuring
        reader = self.consumers.get(topic, group)
        leases = reader.leases
        leases.check_room()
        config = self._config
        if timeout is not None and not leases.returned:
            await reader.member.wait_for(1, 0, config.CONSUMER_JOIN_TIMEOUT)  # the join only
            await reader.member.wait_for(1, timeout, 0)
        if leases.returned < limit:
            await reader.member.wait_for(
                limit - leases.returned, config.CONSUMER_TIMEOUT, config.CONSUMER_JOIN_TIMEOUT
            )
        lease = leases.lease(limit, lease_seconds)
        cursor = self.cursors.issue(
            topic, group, CursorRef(leases.generation, lease.id, len(lease.records))
        )
        return lease, cursor

    async def ack(
        self, topic: str, group: str, cursor: object, release: bool, through: bool = False
    ) -> None:
        """Acknowledge (or release) the lease cursor names; Conflict if it is not held here.

        through: a stream's Last-Event-ID, which acknowledges that stream's events up to it.
        """
        ref = self.cursors.verify(cursor, topic, group)
        reader = self.consumers.find(topic, group)
        if ref.size == 0:
            return
        if reader is None:
            raise Conflict(
                "this cursor's lease is no longer held here (its consumer was closed): its "
                "unacknowledged messages will be delivered again"
            )
        if release:
            reader.leases.release(ref)
        elif through:
            await reader.leases.ack_through(ref)
        else:
            await reader.leases.ack(ref)

    def drain(self) -> None:
        """Shutdown has begun: waiting GETs (long polls) answer what is buffered now."""
        for reader in self.consumers.readers():
            reader.member.drain()

    async def stop(self, timeout: float) -> None:
        """Refuse new work, commit what was acknowledged, close every consumer (each leaves
        its group), then flush and stop the producer."""
        self.stopping = True
        flushes = [reader.leases.flush() for reader in self.consumers.readers()]
        for flushed in flushes:
            try:
                await flushed
            except FlasfkaError as e:
                log.warn("committing acknowledged messages at shutdown: {e}", e=e.message)
        await self.consumers.close_all()
        closing = self._dead_letters.close()
        if closing is not None:
            await closing
        if self.admin is not None:
            self.admin.close()
        if self.producer is not None:
            left = await self.producer.stop(timeout)
            if left:
                log.error("{left} messages were not delivered before shutdown", left=left)
