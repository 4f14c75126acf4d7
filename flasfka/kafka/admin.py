"""Topics: created on first use (or checked to exist), their partition counts, a broker probe."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from twisted.internet.defer import Deferred

from flasfka.errors import NotPermitted, Unavailable, UnknownTopic
from flasfka.kafka.errors import describe, domain_error
from flasfka.reactor import RunBlocking


class TopicAdmin:
    """Creates topics on first use (or checks they exist) and probes the broker."""

    def __init__(
        self,
        settings: dict[str, Any],
        run_blocking: RunBlocking,
        auto_create: bool,
        partitions: int,
        replication_factor: int,
        timeout: float,
    ) -> None:
        self._admin: AdminClient | None = AdminClient(settings)
        self._run_blocking = run_blocking
        self._auto_create = auto_create
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._timeout = timeout
        self._partitions_of: dict[str, int] = {}

    def close(self) -> None:
        """Drop the admin client (its connections close with it)."""
        self._admin = None

    def _client(self) -> AdminClient:
        admin = self._admin
        if admin is None:
            raise Unavailable("flasfka is shutting down", retry_after=1)
        return admin

    def ensure(self, topic: str, create: bool = True) -> Deferred[None] | None:
        """None if the topic is known to exist, else a Deferred that creates or checks it.

        create=False (the principal's ACL lacks "create"): a missing topic is NotPermitted,
        and nothing is created.
        """
        if topic in self._partitions_of:
            return None
        d = self._run_blocking(self._ensure_blocking, topic, create)
        d.addCallback(lambda count: self._partitions_of.__setitem__(topic, count))
        return d

    def partitions(self, topic: str) -> int:
        """How many partitions an ensured topic has."""
        return self._partitions_of[topic]

    def _ensure_blocking(self, topic: str, create: bool = True) -> int:
        """Create or look up topic (pool thread); return its partition count."""
        self._client().poll(0)  # serve queued log lines
        what = f"topic {topic!r}"
        if self._auto_create and create:
            new = NewTopic(
                topic,
                num_partitions=self._partitions,
                replication_factor=self._replication_factor,
            )
            future = self._client().create_topics(
                [new], operation_timeout=self._timeout, request_timeout=self._timeout
            )[topic]
            try:
                future.result(timeout=self._timeout + 1)
            except KafkaException as e:
                error = e.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise domain_error(error, f"create {what}", False, self._timeout) from None
            except TimeoutError:
                raise Unavailable(
                    f"create {what}: the broker did not answer within {self._timeout:g} s"
                ) from None
            return self._count_partitions(topic)
        try:
            # All topics: a metadata request naming the topic creates it on some brokers.
            metadata = self._client().list_topics(timeout=self._timeout)
        except KafkaException as e:
            raise domain_error(e.args[0], f"look up {what}", False, self._timeout) from None
        found = metadata.topics.get(topic)
        if (found is None or found.error is not None) and self._auto_create:
            raise NotPermitted(f"creating {what} needs the 'create' right, which is not granted")
        if found is None or found.error is not None:
            raise UnknownTopic(f"{what} does not exist (AUTO_CREATE_TOPICS is off)")
        return len(found.partitions)

    def _count_partitions(self, topic: str) -> int:
        """The partition count of an existing topic (pool thread)."""
        try:
            metadata = self._client().list_topics(topic=topic, timeout=self._timeout)
        except KafkaException as e:
            raise domain_error(e.args[0], f"look up topic {topic!r}", False, 0) from None
        found = metadata.topics[topic]
        if found.error is not None or not found.partitions:
            raise Unavailable(f"topic {topic!r} has no partitions yet: {found.error}")
        return len(found.partitions)

    def probe(self, timeout: float) -> Deferred[None]:
        """Fire if the broker answers a metadata request within timeout, else fail."""

        def list_topics() -> None:
            admin = self._client()
            admin.poll(0)  # serve queued log lines
            try:
                admin.list_topics(timeout=timeout)
            except KafkaException as e:
                raise Unavailable(f"broker unreachable: {describe(e)}") from None

        return self._run_blocking(list_topics)
