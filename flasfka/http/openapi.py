"""/openapi.json: the OpenAPI 3.1 description of flasfka, derived from the route table."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from flasfka import __version__
from flasfka.http.routes import ROUTES, Param, Route
from flasfka.http.schemas import Answer

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
    "X-Flasfka-Version": {
        "description": "The version of flasfka that answered (on every answer)",
        "required": True,
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "The Basic and Bearer challenges",
        "schema": {"type": "string"},
    },
}

#: The ways to authenticate; each applies only when configured (USERS, TOKENS,
#: TLS_CLIENT_CA), and with none configured every request is anonymous.
_SECURITY_SCHEMES: dict[str, Any] = {
    "basic": {"type": "http", "scheme": "basic", "description": "A USERS name and password"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "A TOKENS token"},
    "clientCertificate": {
        "type": "mutualTLS",
        "description": "On a listener with TLS_CLIENT_CA: the certificate's subject CN",
    },
}
_SECURITY: list[dict[str, list[str]]] = [
    {"basic": []},
    {"bearer": []},
    {"clientCertificate": []},
    {},
]

#: Path parameters that share one place in the path: "/{topic}/{key}/" (POST) and
#: "/{topic}/{group}/" (GET) are one path to OpenAPI, which forbids two templates alike.
_SHARED_SEGMENT = re.compile(r"\{(key|group)\}")


def spec_path(template: str) -> str:
    """The OpenAPI path of a route template (a key or group segment is "{name}")."""
    return _SHARED_SEGMENT.sub("{name}", template)


def _parameter(param: Param, bounds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if param.where == "path" and param.name in ("key", "group"):
        param = dataclasses.replace(param, name="name")
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": {**param.schema, **bounds.get(param.name, {})},
    }


def _answer(answer: Answer) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        described["content"] = {answer.content_type: {"schema": answer.schema}}
        for content_type, schema in answer.alternatives:
            described["content"][content_type] = {"schema": schema}
    names = ("X-Flasfka-Version", *answer.headers)
    described["headers"] = {name: _HEADERS[name] for name in names}
    return described


def _operation(route: Route, bounds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "responses": {str(status): _answer(a) for status, a in sorted(route.answers.items())},
    }
    if not route.open:
        operation["security"] = _SECURITY
    if route.parameters:
        operation["parameters"] = [_parameter(p, bounds) for p in route.parameters]
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": route.body},
                **{kind: {"schema": schema} for kind, schema in route.body_forms},
            },
        }
    return operation


def openapi_document(bounds: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document; bounds adds config limits to parameter schemas
    (e.g. {"limit": {"maximum": CONSUMER_MAX_LIMIT}})."""
    bounds = bounds or {}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation = _operation(route, bounds)
        paths.setdefault(spec_path(route.template), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flasfka",
            "version": __version__,
            "description": "HTTP gateway for Kafka. A path ending in '/' names a topic; "
            "paths of flasfka's own never end in '/'. Every answer carries X-Flasfka-Version "
            "(and, with worker processes, WORKERS > 1, X-Flasfka-Worker: the id of the worker "
            "that answered); "
            'every error is JSON {"error", "status"}.',
        },
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR_SCHEMA}, "securitySchemes": _SECURITY_SCHEMES},
    }
