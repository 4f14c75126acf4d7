"""The open readers, one per (topic, group): created on demand, bounded, closed when idle."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from flasfka.delivery import CommitRounds
from flasfka.errors import Unavailable
from flasfka.kafka import GroupMember
from flasfka.reactor import ReactorLike

log = Logger(namespace="flasfka.consumers")

#: Builds a started-to-be group member for (topic, group).
MemberFactory = Callable[[str, str], GroupMember]


class GroupReader:
    """A group member and the delivery rules that read through it."""

    __slots__ = ("at_most_once", "member")

    def __init__(self, member: GroupMember) -> None:
        self.member = member
        self.at_most_once = CommitRounds(member)


class ConsumerRegistry:
    """Keeps at most max_consumers GroupReaders and closes those idle for idle_timeout."""

    def __init__(
        self,
        reactor: ReactorLike,
        factory: MemberFactory,
        max_consumers: int,
        idle_timeout: float,
    ) -> None:
        self._reactor = reactor
        self._factory = factory
        self._max = max_consumers
        self._idle_timeout = idle_timeout
        self._consumers: dict[tuple[str, str], GroupReader] = {}
        self._closing: set[Deferred[None]] = set()

    def __len__(self) -> int:
        return len(self._consumers)

    def get(self, topic: str, group: str) -> GroupReader:
        """The reader of (topic, group), its member started now if there is none."""
        reader = self._consumers.get((topic, group))
        if reader is not None and reader.member.failure is None:
            return reader
        if reader is not None:
            self._close((topic, group))
        if len(self._consumers) >= self._max:
            raise Unavailable(
                f"too many consumers open ({self._max}, MAX_CONSUMERS); "
                "try again once idle ones expire",
                retry_after=max(1, int(self._idle_timeout / 4)),
            )
        reader = GroupReader(self._factory(topic, group))
        self._consumers[(topic, group)] = reader
        reader.member.start()
        log.info("consumer {group}/{topic} opened", group=group, topic=topic)
        return reader

    def expire_idle(self) -> None:
        """Close the consumers that served no GET for idle_timeout seconds."""
        now = self._reactor.seconds()
        for ids, reader in list(self._consumers.items()):
            consumer = reader.member
            if not consumer.waiting and now - consumer.last_used >= self._idle_timeout:
                log.info(
                    "consumer {group}/{topic} idle for {idle:.0f} s: closing",
                    group=ids[1],
                    topic=ids[0],
                    idle=now - consumer.last_used,
                )
                self._close(ids)

    def _close(self, ids: tuple[str, str]) -> None:
        d = self._consumers.pop(ids).member.close()
        self._closing.add(d)
        d.addBoth(self._closed, d)

    def _closed(self, result: object, d: Deferred[None]) -> object:
        self._closing.discard(d)
        return result

    def close_all(self) -> Deferred[None]:
        """Close every consumer (each leaves its group); fires when all are closed."""
        for ids in list(self._consumers):
            self._close(ids)
        pending = list(self._closing)
        return gatherResults(pending, consumeErrors=True).addCallback(lambda _: None)
