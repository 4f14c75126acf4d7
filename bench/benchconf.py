"""flasfka's config for the benchmark: the broker address comes from $BENCH_KAFKA."""

import os

HOSTS = [os.environ["BENCH_KAFKA"]]
# A Tansu group join waits about session.timeout.ms / 2 (see /work/shared/FINDINGS.md).
CONSUMER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
