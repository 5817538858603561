"""The lookup endpoint as bare ASGI: `POST /get-online-features` without FastAPI's routing and dependency machinery.

It is the server's hot path: per request, Starlette's route matching, request
object, dependency solving and response classes cost more CPU than the lookup
itself. `LookupRouter` answers that one path and hands every other request
(and the lifespan) to the FastAPI app, which still documents the endpoint in
its OpenAPI schema. Errors get the same status codes and bodies as FastAPI's
handlers give elsewhere (`error_answer`).
"""

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from feature_platform.errors import DefinitionMismatchError, FeaturePlatformError, RegistryError
from feature_platform.online.store import OnlineStoreError
from feature_platform.serving.json_values import dumps

LOOKUP_PATH = "/get-online-features"
JSON_HEADERS = [(b"content-type", b"application/json")]

Lookup = Callable[[bytes], Awaitable[bytes]]


class LookupRouter:
    """ASGI app: `POST /get-online-features` answered by `lookup(body) -> JSON bytes`, anything else by `app`."""

    def __init__(self, app: Any, lookup: Lookup, *, token: str | None = None) -> None:
        self.app = app
        self.lookup = lookup
        self.expected = expected_authorization(token)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != LOOKUP_PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        status, content, headers = 200, b"", JSON_HEADERS
        try:
            check_authorization(scope, self.expected)
            content = await self.lookup(await read_body(receive))
        except Exception as exc:
            answer = error_answer(exc)
            if answer is None:
                raise
            status, detail, extra = answer
            content, headers = dumps({"detail": detail}), [*JSON_HEADERS, *extra]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})



def expected_authorization(token: str | None) -> bytes | None:
    """The `Authorization` header value a request must carry when the server has a token."""
    return f"Bearer {token}".encode() if token else None


def check_authorization(scope: dict, expected: bytes | None) -> None:
    """Raise the 401 unless the request carries `expected` (compared in constant time), if a token is set."""
    if expected is None:
        return
    given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    if not hmac.compare_digest(given, expected):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def read_body(receive: Any) -> bytes:
    """The whole request body (a size limit, if any, is the `BodyLimit` middleware's around this app)."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def error_answer(exc: Exception) -> tuple[int, Any, list[tuple[bytes, bytes]]] | None:
    """(status, detail, extra headers) of the error answer to `exc`, or None for a bug (a 500)."""
    if isinstance(exc, OnlineStoreError):
        return 503, str(exc), []
    if isinstance(exc, (DefinitionMismatchError, RegistryError)):
        # The server's definitions are not the applied ones: no request can be served until they are.
        return 409, str(exc), []
    if isinstance(exc, FeaturePlatformError):
        return 400, str(exc), []
    if isinstance(exc, RequestValidationError):
        return 422, jsonable_encoder(exc.errors()), []
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail, [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    return None


def parse(model: type[BaseModel], body: bytes) -> Any:
    """`body` as `model`, or the 422 FastAPI would give for it."""
    try:
        content = json.loads(body, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": str(exc)}}]) from None
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a repeated name (JSON parsers would keep one of the two silently)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        repeated = sorted({name for name, _ in pairs if sum(1 for other, _ in pairs if other == name) > 1})
        raise ValueError(f"the name {repeated[0]!r} appears twice in one JSON object")
    return result
