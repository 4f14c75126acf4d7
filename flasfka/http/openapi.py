"""/openapi.json: the OpenAPI 3.1 description of flasfka, derived from the route table."""

from __future__ import annotations

from typing import Any

from flasfka import __version__
from flasfka.http.routes import ROUTES, Answer, Param, Route

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, and what to send instead"},
        "status": {"type": "integer"},
    },
}

_HEADERS: dict[str, dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "string"},
    },
    "Preference-Applied": {
        "description": "return=representation when the answer carries the offsets",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "true when this is the kept answer of an earlier request with the "
        "same Idempotency-Key (nothing was written)",
        "schema": {"type": "string"},
    },
}

#: Answers any request can get, whatever its route.
_ANY_ROUTE = {
    "408": {"$ref": "#/components/responses/Timeout"},
    "431": {"$ref": "#/components/responses/HeadersTooLarge"},
}


def _parameter(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": param.schema,
    }


def _answer(answer: Answer) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        described["content"] = {answer.content_type: {"schema": answer.schema}}
    if answer.headers:
        described["headers"] = {name: _HEADERS[name] for name in answer.headers}
    return described


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "responses": {str(status): _answer(a) for status, a in sorted(route.answers.items())},
    }
    if route.parameters:
        operation["parameters"] = [_parameter(p) for p in route.parameters]
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": route.body},
                **{kind: {"schema": schema} for kind, schema in route.body_forms},
            },
        }
    return operation


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flasfka",
            "version": __version__,
            "description": "HTTP gateway for Kafka. A path ending in '/' names a topic; "
            "paths of flasfka's own never end in '/'. Every answer carries X-Flasfka-Version; "
            'every error is JSON {"error", "status"}.',
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "responses": {
                "Timeout": {
                    "description": "The request did not arrive within HTTP_IDLE_TIMEOUT",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                },
                "HeadersTooLarge": {
                    "description": "A request line or header is over the limit",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                },
            },
        },
    }
