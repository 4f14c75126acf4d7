"""The HTTP ceiling: a bare Klein app with flasfka's routes and JSON work but no Kafka.

POST /<topic>/ parses and checks the body as flasfka does, then answers 204; GET
/<topic>/<group>/?limit=N answers N in-memory messages as flasfka's JSON. Run it as its own
process: ``python -m bench.bare_klein PORT``.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from klein import Klein
from twisted.internet import reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web import server
from twisted.web.iweb import IRequest

from flasfka.http.parsing import check_group, check_topic, parse_limit, parse_messages

app = Klein()
#: What a GET returns: benchmark-like 100-byte messages.
_STORE = [f"bench-{i:08d}-" + "x" * 85 for i in range(10000)]


@app.route("/<topic>/", methods=["POST"])
def post(request: IRequest, topic: str) -> bytes:
    """Parse and check the messages, drop them, answer 204."""
    check_topic(topic)
    values = parse_messages(request.content.read())
    assert isinstance(values, list)
    request.setResponseCode(204)
    return b""


@app.route("/<topic>/<path:group>/", methods=["GET"])
def get(request: IRequest, topic: str, group: str) -> bytes:
    """Answer ?limit= messages from memory."""
    check_topic(topic)
    check_group(group)
    raw = request.args.get(b"limit")
    limit = parse_limit(raw[-1] if raw else None, 100, 10000)
    request.setHeader(b"Content-Type", b"application/json")
    return orjson.dumps({"group": group, "messages": [m for m in _STORE[:limit]]})


class BareRequest(server.Request):
    """A Request that, like flasfka's, does not parse POST bodies as forms."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(*args, **kwargs)


def main() -> None:
    """Serve on 127.0.0.1:PORT until killed, with flasfka-serve's logging (access log too)."""
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    site = server.Site(app.resource(), requestFactory=BareRequest)
    site.noisy = False
    reactor.listenTCP(int(sys.argv[1]), site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
