"""/openapi.json describes the produce forms: bodies, Prefer, Idempotency-Key, 200/409/422."""

from __future__ import annotations

import jsonschema_rs

from flasfka.http.openapi import openapi_document


def test_the_produce_operations_describe_every_form():
    paths = openapi_document()["paths"]
    for path in ("/{topic}/", "/{topic}/{name}/"):
        post = paths[path]["post"]
        content = post["requestBody"]["content"]
        assert set(content) == {
            "application/json",
            "application/octet-stream",
            "application/x-ndjson",
        }
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert headers == {"Prefer", "Idempotency-Key"}
        assert {"200", "204", "400", "409", "413", "422", "503"} <= set(post["responses"])
        offsets = post["responses"]["200"]["content"]["application/json"]["schema"]
        assert offsets["required"] == ["offsets"]


def test_the_body_schema_accepts_the_forms_the_server_accepts():
    post = openapi_document()["paths"]["/{topic}/"]["post"]
    validator = jsonschema_rs.validator_for(
        post["requestBody"]["content"]["application/json"]["schema"]
    )
    good = {
        "messages": [
            "s",
            {"value": None},
            {
                "value": {"base64": "AA=="},
                "key": "k",
                "headers": [{"key": "h", "value": None}],
                "partition": 0,
                "timestamp": 1,
            },
        ]
    }
    assert validator.is_valid(good)
    for bad in (
        {"messages": [{"key": "k"}]},
        {"messages": [{"value": "v", "extra": 1}]},
        {"messages": [{"value": "v", "headers": [{"key": "h"}]}]},
        {"messages": [5]},
    ):
        assert not validator.is_valid(bad), bad


def test_every_answer_declares_the_version_header_and_the_ack_its_413():
    """schemathesis's header check then holds every answer to carrying X-Flasfka-Version."""
    paths = openapi_document()["paths"]
    for operations in paths.values():
        for operation in operations.values():
            for answer in operation["responses"].values():
                assert answer["headers"]["X-Flasfka-Version"]["required"] is True
    assert "413" in paths["/{topic}/{name}/ack"]["post"]["responses"]
