"""flasfka's config for the benchmark: the broker address comes from $BENCH_KAFKA."""

import os

HOSTS = [os.environ["BENCH_KAFKA"]]
from flasfka.kafka.settings import TANSU_CONSUMER_SETTINGS

CONSUMER_CONFIG = dict(TANSU_CONSUMER_SETTINGS)
