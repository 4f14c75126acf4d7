"""flasfka's config for the benchmark: the broker address comes from $BENCH_KAFKA."""

import os

from flasfka.kafka import settings as kafka_settings

HOSTS = [os.environ["BENCH_KAFKA"]]
CONSUMER_CONFIG = dict(kafka_settings.TANSU_CONSUMER_SETTINGS)
CONSUMER_MAX_LEASED = 40000  # 16 connections x 1000-message leases, with room
