"""flasfka paces the garbage collector for its record churn, whichever way it is started."""

import gc

from flasfka.app.build import Flasfka
from flasfka.app.collector import THRESHOLDS


def test_the_top_service_sets_the_collector_thresholds():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        Flasfka("text")
        assert gc.get_threshold() == THRESHOLDS
    finally:
        gc.set_threshold(*before)
