"""The commit thread: calls run in order off the caller's thread, drain and stop wait for them."""

from __future__ import annotations

import queue
import threading

from twisted.internet.task import Clock

from flasfka.errors import Unavailable
from flasfka.kafka.commit_thread import CommitThread

WAIT = 10.0  # bound of every wait below; none should come near it


class QueuedReactor(Clock):
    """A Clock whose callFromThread queues the call for the test thread to run."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: queue.SimpleQueue = queue.SimpleQueue()

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802
        self.calls.put((f, args, kwargs))

    def run_one(self) -> None:
        f, args, kwargs = self.calls.get(timeout=WAIT)
        f(*args, **kwargs)


def results(d):
    out = []
    d.addBoth(out.append)
    return out


def test_calls_run_in_order_on_another_thread_and_answer_in_the_reactor():
    reactor = QueuedReactor()
    commits = CommitThread(reactor, "test-commit")
    commits.start()
    ran: list[tuple[int, str]] = []

    def record(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * 10

    outs = [results(commits.call(record, n)) for n in range(5)]
    for _ in outs:
        reactor.run_one()
    assert outs == [[0], [10], [20], [30], [40]]
    assert [n for n, _ in ran] == [0, 1, 2, 3, 4]
    assert {name for _, name in ran} == {"test-commit"}
    commits.stop()


def test_a_failing_call_is_an_errback_and_the_thread_goes_on():
    reactor = QueuedReactor()
    commits = CommitThread(reactor, "test-commit")
    commits.start()

    def refuse() -> None:
        raise Unavailable("no coordinator")

    failed = results(commits.call(refuse))
    after = results(commits.call(lambda: "next"))
    reactor.run_one()
    reactor.run_one()
    assert failed[0].check(Unavailable)
    assert after == ["next"]
    commits.stop()


def test_drain_returns_once_the_calls_queued_before_it_have_run():
    reactor = QueuedReactor()
    commits = CommitThread(reactor, "test-commit")
    commits.start()
    release = threading.Event()
    ran: list[int] = []

    def slow(n: int) -> None:
        assert release.wait(WAIT)
        ran.append(n)

    commits.call(slow, 1)
    commits.call(slow, 2)
    drained = threading.Event()
    drainer = threading.Thread(target=lambda: (commits.drain(), drained.set()))
    drainer.start()
    assert not drained.wait(0.2)  # held up by the queued commits
    release.set()
    assert drained.wait(WAIT)
    assert ran == [1, 2]
    drainer.join(WAIT)
    commits.stop()


def test_stop_runs_what_is_queued_then_ends_and_later_calls_fail_at_close():
    reactor = QueuedReactor()
    commits = CommitThread(reactor, "test-commit")
    commits.start()
    ran: list[int] = []
    commits.call(ran.append, 1)
    commits.stop()
    assert ran == [1]
    assert not commits._thread.is_alive()
    commits.drain()  # a stopped thread has nothing to drain: returns at once
    late = results(commits.call(ran.append, 2))
    commits.close()  # the member ended
    assert late[0].check(Unavailable)
    assert ran == [1]


def test_a_thread_never_started_stops_and_drains_at_once():
    commits = CommitThread(QueuedReactor(), "test-commit")
    commits.drain()
    commits.stop()
