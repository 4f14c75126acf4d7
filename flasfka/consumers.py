"""The open consumers, one per (topic, group): created on demand, bounded, closed when idle."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from flasfka.errors import Unavailable
from flasfka.kafka import GroupConsumer, ReactorLike

log = Logger(namespace="flasfka.consumers")

#: Builds a started-to-be consumer for (topic, group).
ConsumerFactory = Callable[[str, str], GroupConsumer]


class ConsumerRegistry:
    """Keeps at most max_consumers GroupConsumers and closes those idle for idle_timeout."""

    def __init__(
        self,
        reactor: ReactorLike,
        factory: ConsumerFactory,
        max_consumers: int,
        idle_timeout: float,
    ) -> None:
        self._reactor = reactor
        self._factory = factory
        self._max = max_consumers
        self._idle_timeout = idle_timeout
        self._consumers: dict[tuple[str, str], GroupConsumer] = {}
        self._closing: set[Deferred[None]] = set()

    def __len__(self) -> int:
        return len(self._consumers)

    def get(self, topic: str, group: str) -> GroupConsumer:
        """The consumer of (topic, group), started now if there is none."""
        consumer = self._consumers.get((topic, group))
        if consumer is not None and consumer.failure is None:
            return consumer
        if consumer is not None:
            self._close((topic, group))
        if len(self._consumers) >= self._max:
            raise Unavailable(
                f"too many consumers open ({self._max}, MAX_CONSUMERS); "
                "try again once idle ones expire",
                retry_after=max(1, int(self._idle_timeout / 4)),
            )
        consumer = self._factory(topic, group)
        self._consumers[(topic, group)] = consumer
        consumer.start()
        log.info("consumer {group}/{topic} opened", group=group, topic=topic)
        return consumer

    def expire_idle(self) -> None:
        """Close the consumers that served no GET for idle_timeout seconds."""
        now = self._reactor.seconds()
        for ids, consumer in list(self._consumers.items()):
            if not consumer.waiting and now - consumer.last_used >= self._idle_timeout:
                log.info(
                    "consumer {group}/{topic} idle for {idle:.0f} s: closing",
                    group=ids[1],
                    topic=ids[0],
                    idle=now - consumer.last_used,
                )
                self._close(ids)

    def _close(self, ids: tuple[str, str]) -> None:
        consumer = self._consumers.pop(ids)
        d = consumer.close()
        self._closing.add(d)
        d.addBoth(lambda result: (self._closing.discard(d), result)[1])

    def close_all(self) -> Deferred[None]:
        """Close every consumer (each leaves its group); fires when all are closed."""
        for ids in list(self._consumers):
            self._close(ids)
        pending = list(self._closing)
        return gatherResults(pending, consumeErrors=True).addCallback(lambda _: None)
