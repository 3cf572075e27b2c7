"""The OpenAPI document (``/openapi.json``, ``/docs``) says what the server really answers.

FastAPI describes each route's own responses; three kinds of answer come from elsewhere and are added here:

- the guard's refusals (``server/guard.py``), possible on every operation: 401 without the token (when the
  server has one), 403 for a Host name or an origin it does not answer, 413 for a body over the limit;
- the guard's 500 for an exception nothing expected, in the same error body (a reference to the server's log);
- the 422 of a request that does not fit the parameters or body, which FastAPI documents as its own
  ``HTTPValidationError`` while our error handlers answer ``ErrorBody`` (``OpenAIErrorBody`` under ``/v1``).

The graph document a body takes is the engine's JSON Schema (``GET /api/schema/graph``), added as the component
``GraphDocument`` (its definitions beside it), so the description of a run or a saved graph is the validator's.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from nodeforge.engine.document import document_schema
from nodeforge.server.error_responses import is_openai
from nodeforge.server.schemas import ErrorBody, OpenAIErrorBody

REF = "#/components/schemas/{model}"
FASTAPI_422 = {"$ref": REF.format(model="HTTPValidationError")}
GUARD = {"401": "no valid bearer token (only when the server has a token)",
         "403": "refused by the guard: a Host name this server does not answer, or a cross-origin request",
         "413": "the request body is over the size limit (--max-upload-mb for uploads)",
         "500": "an unexpected error; the message gives a reference to the server's log, nothing more"}
INVALID_REQUEST = "the parameters or the body do not fit this operation; {where} names each problem"


def install_openapi(app: FastAPI) -> None:
    """Build the document once, on first request, from FastAPI's: with the bearer scheme (so ``/docs`` can send
    the token) and these errors."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}, {}]
            document_errors(schema)
            add_graph_document(components.setdefault("schemas", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend its schema


def document_errors(schema: dict[str, Any]) -> None:
    """Add the guard's responses to every operation and give every 422 the body the server sends."""
    models = schema["components"].setdefault("schemas", {})
    _, definitions = models_json_schema([(ErrorBody, "serialization"), (OpenAIErrorBody, "serialization")],
                                        ref_template=REF)
    for name, definition in definitions["$defs"].items():
        models.setdefault(name, definition)
    for path, item in schema.get("paths", {}).items():
        openai = is_openai(path)
        body = REF.format(model=(OpenAIErrorBody if openai else ErrorBody).__name__)
        invalid_request = INVALID_REQUEST.format(where="the message" if openai else "issues")
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            invalid = responses.get("422", {}).get("content", {}).get("application/json", {})
            if invalid.get("schema") == FASTAPI_422:
                responses["422"] = _error(invalid_request, body)
            for status, description in GUARD.items():
                known = responses.get(status)
                if known is None:
                    responses[status] = _error(description, body)
                else:
                    known["description"] = "; or ".join(filter(None, (known.get("description"), description)))
    for unused in ("HTTPValidationError", "ValidationError"):
        models.pop(unused, None)


def add_graph_document(models: dict[str, Any]) -> None:
    """The graph document's JSON Schema as ``GraphDocument``, its ``$defs`` as components of their own."""
    text = json.dumps(document_schema()).replace('"#/$defs/', '"#/components/schemas/')
    document = json.loads(text)
    for name, definition in document.pop("$defs", {}).items():
        models.setdefault(name, definition)
    for key in ("$schema", "$id"):
        document.pop(key, None)
    nodes = document["properties"]["nodes"]
    nodes["minProperties"] = 1  # a graph without nodes is refused: there is nothing to run
    nodes["propertyNames"] = {"pattern": next(iter(nodes["patternProperties"]))}  # every key is a node id
    models["GraphDocument"] = document


def _error(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}
