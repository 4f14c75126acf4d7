"""librdkafka errors in flasfka's terms: which are temporary, and the domain error of each."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from flasfka.errors import BrokerRefused, FlasfkaError, TooLarge, Unavailable, UnknownTopic

#: Errors of a broker that cannot be reached or did not answer in time.
UNREACHABLE_CODES = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
    }
)


#: Errors of an idempotent producer whose state the broker lost (e.g. a restarted broker):
#: librdkafka raises a fatal error and flasfka replaces the producer.
PRODUCER_STATE_CODES = frozenset(
    {
        KafkaError._FATAL,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.PRODUCER_FENCED,
    }
)


#: Errors of a group whose coordinator is away or which is rebalancing: a commit can succeed
#: once it is back or the rebalance is over.
GROUP_STATE_CODES = frozenset(
    {
        KafkaError._WAIT_COORD,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._STATE,
    }
)


def describe(error: BaseException | KafkaError) -> str:
    """A one-line description of a librdkafka error."""
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def domain_error(error: KafkaError, what: str, reachable: bool, timeout: float) -> FlasfkaError:
    """Map a librdkafka error to the flasfka error a client sees."""
    code = error.code()
    if error.fatal() or code in PRODUCER_STATE_CODES:
        return Unavailable(
            f"{what}: the Kafka client hit a fatal error ({error.str()}); it is being "
            "replaced, try again"
        )
    if code in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT):
        if reachable:
            return Unavailable(f"{what}: the broker did not acknowledge within {timeout:g} s")
        return Unavailable(
            f"{what}: the broker cannot be reached (nothing acknowledged within {timeout:g} s)"
        )
    if code in GROUP_STATE_CODES:
        return Unavailable(
            f"{what}: the group's coordinator is unavailable or the group is rebalancing "
            f"({error.str()}); try again"
        )
    if code in UNREACHABLE_CODES or error.retriable():
        return Unavailable(f"{what}: the broker cannot be reached ({error.str()})")
    if code == KafkaError.UNKNOWN_TOPIC_OR_PART or code == KafkaError._UNKNOWN_TOPIC:
        return UnknownTopic(f"{what}: the topic does not exist")
    if code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE):
        return TooLarge(f"{what}: a message is larger than the broker accepts")
    return BrokerRefused(f"{what}: the broker refused it ({error.name()}: {error.str()})")
