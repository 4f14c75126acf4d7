"""``python -m bench``: flasfka's throughput and latency against its baselines in one run."""
