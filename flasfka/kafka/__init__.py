"""The Kafka side: the only package that imports confluent_kafka.

It raises flasfka's domain errors (flasfka.errors) and hands out flasfka's Records; it knows
nothing of HTTP. Calls that may block (consume, commit, close, admin requests) never run on
the reactor thread.
"""

from flasfka.kafka.admin import TopicAdmin
from flasfka.kafka.budget import ReadAheadBudget
from flasfka.kafka.consumer import GroupMember
from flasfka.kafka.log_bridge import RdkafkaLogBridge
from flasfka.kafka.producer import KafkaProducer
from flasfka.kafka.settings import check_client_settings, client_settings

__all__ = [
    "GroupMember",
    "KafkaProducer",
    "RdkafkaLogBridge",
    "ReadAheadBudget",
    "TopicAdmin",
    "check_client_settings",
    "client_settings",
]
