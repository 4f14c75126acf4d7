"""The open readers, one per (topic, group): created on demand, bounded, closed when idle."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from flasfka.delivery import CommitRounds
from flasfka.errors import Unavailable
from flasfka.kafka import GroupMember
from flasfka.leases import Leases
from flasfka.reactor import ReactorLike

log = Logger(namespace="flasfka.consumers")

#: Builds a started-to-be group member for (topic, group).
MemberFactory = Callable[[str, str], GroupMember]
#: Builds the leases (at-least-once ledger) of a new member.
LeaseFactory = Callable[[GroupMember], Leases]


class GroupReader:
    """A group member and the delivery rules that read through it."""

    __slots__ = ("at_most_once", "leases", "member")

    def __init__(self, member: GroupMember, leases: Leases | None = None) -> None:
        self.member = member
        #: At-least-once leases; at-most-once GETs read through their ledger too, so that
        #: they never commit past a leased message (see flasfka.leases).
        self.leases = leases if leases is not None else Leases(member._reactor, member, 10000)
        self.at_most_once = CommitRounds(self.leases.at_most_once)


class ConsumerRegistry:
    """Keeps at most max_consumers GroupReaders and closes those idle for idle_timeout."""

    def __init__(
        self,
        reactor: ReactorLike,
        factory: MemberFactory,
        max_consumers: int,
        idle_timeout: float,
        lease_factory: LeaseFactory | None = None,
    ) -> None:
        self._reactor = reactor
        self._factory = factory
        self._lease_factory = lease_factory
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
        member = self._factory(topic, group)
        leases = self._lease_factory(member) if self._lease_factory is not None else None
        reader = GroupReader(member, leases)
        self._consumers[(topic, group)] = reader
        reader.member.start()
        log.info("consumer {group}/{topic} opened", group=group, topic=topic)
        return reader

    def find(self, topic: str, group: str) -> GroupReader | None:
        """The open reader of (topic, group), if any (none is started)."""
        return self._consumers.get((topic, group))

    def readers(self) -> list[GroupReader]:
        """Every open reader."""
        return list(self._consumers.values())

    def expire_idle(self) -> None:
        """Close the consumers that served no GET for idle_timeout seconds."""
        now = self._reactor.seconds()
        for ids, reader in list(self._consumers.items()):
            consumer = reader.member
            if (
                not consumer.waiting
                and not reader.leases.leased
                and now - consumer.last_used >= self._idle_timeout
            ):
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
