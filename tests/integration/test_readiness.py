"""/readyz follows the broker: 503 with a reason while it is down, 200 once it is back."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import threads

from tests.support.helpers import get, post, sleep
from tests.support.ops import metrics, sample, start_app, write_config
from tests.support.servers import unique


async def wait_status(url: str, wanted: int, timeout: float) -> dict:
    """Poll GET /readyz until it answers wanted; its body."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = await get(url, "/readyz")
        if status == wanted:
            return body
        assert time.monotonic() < deadline, (wanted, status, body)
        await sleep(0.25)


@pytest_twisted.ensureDeferred
async def test_readyz_turns_503_while_the_broker_is_down_and_200_when_it_is_back(
    own_broker, tmp_path
):
    config = write_config(tmp_path / "flasfka.conf.py", own_broker.address, PRODUCE_TIMEOUT=2.0)
    app = await start_app(config)
    topic = unique()
    try:
        assert await wait_status(app.url, 200, 15) == {"status": "ready"}
        await threads.deferToThread(own_broker.stop)
        body = await wait_status(app.url, 503, 15)
        assert body["status"] == "unavailable"
        assert "broker" in body["reason"]
        samples = await metrics(app.url)
        assert sample(samples, "flasfka_broker_connected") == 0
        assert (await get(app.url, "/healthz"))[0] == 200  # alive all the same
        # A POST meanwhile is refused with 503 and counted as a produce error.
        response = await post(app.url, f"/{topic}/", {"messages": ["lost?"]})
        assert response.code == 503, await response.text()
        samples = await metrics(app.url)
        assert sample(samples, "flasfka_produce_errors_total", topic=topic, status="503") == 1
        assert sample(samples, "flasfka_messages_produced_total", topic=topic) == 0

        await threads.deferToThread(own_broker.start)  # same port, empty
        assert await wait_status(app.url, 200, 40) == {"status": "ready"}
        assert sample(await metrics(app.url), "flasfka_broker_connected") == 1
        # Readiness never claims more than POSTs get: a POST now is acknowledged, or it
        # fails and /readyz says so. (Seen on Tansu: an idempotent producer does not recover
        # from a restart of a memory-only broker, which forgot its producer id.)
        response = await post(app.url, f"/{topic}/", {"messages": ["after"]})
        text = await response.text()
        produced = sample(await metrics(app.url), "flasfka_messages_produced_total", topic=topic)
        if response.code == 204:
            assert produced == 1
            assert (await get(app.url, "/readyz"))[0] == 200
        else:
            assert (response.code, produced) == (503, 0), text
            status, body, _ = await get(app.url, "/readyz")
            assert status == 503
            assert body["reason"].startswith("the broker is connected but the last POST failed")
    finally:
        await app.stop()
