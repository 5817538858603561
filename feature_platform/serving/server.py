"""The HTTP feature server: online vectors and pushes over FastAPI.

`python -m feature_platform.serving.server --repo .` (or `feature-platform serve`) binds
127.0.0.1:6566 by default, with one worker process per core (`--workers`). When
`FEATURE_PLATFORM_SERVER_TOKEN` is set every data endpoint wants `Authorization:
Bearer <token>`. Lookups await Redis (redis.asyncio), so a slow or frozen Redis
never holds up other requests or `/health`. Answers are strict JSON
(`json_values` says how each dtype is written); bad requests get a 4xx with a
message. The OpenAPI schema is at `/openapi.json`, docs at `/docs`.
"""

import argparse
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from feature_platform.errors import FeaturePlatformError
from feature_platform.online.async_client import AsyncOnlineClient
from feature_platform.online.store import OnlineStoreError
from feature_platform.serving.http_protocol import http_protocol
from feature_platform.serving.json_values import dumps, table_from_json
from feature_platform.serving.lookup import LOOKUP_PATH, LookupRouter, check_authorization, error_answer, expected_authorization, parse
from feature_platform.serving.workers import run_workers
from feature_platform.store import FeatureStore

DEFAULT_PORT = 6566
MAX_BODY_BYTES = 4 * 1024 * 1024
GRACEFUL_SHUTDOWN_S = 10


class StrictJSONResponse(JSONResponse):
    """A JSON answer that is always RFC 8259: ASCII, non-finite floats as strings, dtypes as `json_values` says."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


class OnlineFeaturesRequest(BaseModel):
    """Entities as columns of values, and either feature references or a feature view's name."""

    model_config = ConfigDict(extra="forbid")
    entities: dict[str, list[Any]] = Field(examples=[{"user_id": [1, 2], "amount": [120.0, 8.5]}])
    features: list[str] | None = Field(default=None, examples=[["user_profile:age"]])
    feature_view: str | None = Field(default=None, examples=["fraud_detection"], description="the name of a feature view")
    full_feature_names: bool = False

    @model_validator(mode="after")
    def one_source_of_features(self) -> "OnlineFeaturesRequest":
        if (self.features is None) == (self.feature_view is None):
            raise ValueError("give exactly one of 'features' (a list of references) or 'feature_view' (a name)")
        return self


class OnlineFeaturesResponse(BaseModel):
    """Columns of values (join keys first) and a status per feature value."""

    features: dict[str, list[Any]]
    statuses: dict[str, list[str]]


class PushRequest(BaseModel):
    """Rows for one feature group as columns of JSON values, each in its dtype's JSON form (see docs/serving.md)."""

    model_config = ConfigDict(extra="forbid")
    group: str
    rows: dict[str, list[Any]]
    to: Literal["online", "offline", "online_and_offline"] = "online"


class BodyLimit:
    """ASGI middleware refusing request bodies larger than `limit` bytes with 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    response = JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)
    await response({"type": "http"}, None, send)


def create_app(store: FeatureStore, *, token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> BodyLimit:
    """The feature server's ASGI app over `store`; `token`, if set, is required as a bearer token.

    Lookups go straight to `LookupRouter`; everything else (and the OpenAPI schema) is the FastAPI app's.
    """
    redis = AsyncOnlineClient(store.online)
    redis_endpoint = store.online_endpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.close()

    app = FastAPI(
        title="feature-platform feature server", version="1", default_response_class=StrictJSONResponse, lifespan=lifespan
    )
    expected = expected_authorization(token)

    async def authorised(request: Request) -> None:
        check_authorization(request.scope, expected)

    @app.exception_handler(OnlineStoreError)
    @app.exception_handler(FeaturePlatformError)
    @app.exception_handler(RequestValidationError)
    @app.exception_handler(StarletteHTTPException)
    async def error(request: Request, exc: Exception) -> Response:
        answer = error_answer(exc)
        assert answer is not None, "registered only for the errors error_answer knows"
        status, detail, headers = answer
        return StrictJSONResponse({"detail": detail}, status_code=status, headers={k.decode(): v.decode() for k, v in headers})

    lookup_body = {"required": True, "content": {"application/json": {"schema": OnlineFeaturesRequest.model_json_schema()}}}

    async def lookup(body: bytes) -> bytes:
        request = parse(OnlineFeaturesRequest, body)
        features: Any = store.catalog.view(request.feature_view) if request.feature_view is not None else request.features
        result = await redis.read(store.online_read_plan(features, request.full_feature_names), request.entities)
        return dumps({"features": result.to_dict(), "statuses": result.statuses})

    @app.post(LOOKUP_PATH, response_model=OnlineFeaturesResponse, openapi_extra={"requestBody": lookup_body})
    async def get_online_features(request: Request) -> Response:
        """Documents the lookup in the OpenAPI schema; requests are answered by `LookupRouter` before they get here."""
        await authorised(request)
        return Response(await lookup(await request.body()), media_type="application/json")

    push_body = {"required": True, "content": {"application/json": {"schema": PushRequest.model_json_schema()}}}

    @app.post("/push", dependencies=[Depends(authorised)], openapi_extra={"requestBody": push_body})
    async def push(request: Request) -> dict[str, Any]:
        body = parse(PushRequest, await request.body())
        return await run_in_threadpool(push_rows, body)

    def push_rows(body: PushRequest) -> dict[str, Any]:
        table = table_from_json(store.group(body.group), body.rows)
        return {"group": body.group, "rows": store.push(body.group, table, to=body.to), "to": body.to}

    @app.get("/health")
    async def health() -> Response:
        """Whether Redis answers within 0.5 s, and which Redis it is (kind, host, port, TLS, embedded; never credentials)."""
        reachable = await redis.ping()
        content = {"status": "ok" if reachable else "degraded", "redis": reachable, "redis_endpoint": redis_endpoint,
                   "environment": store.environment}
        return StrictJSONResponse(content, status_code=200 if reachable else 503)

    @app.get("/feature-views", dependencies=[Depends(authorised)])
    def feature_views() -> list[dict[str, Any]]:
        views = []
        for name in store.list_views():
            view = store.catalog.view(name)
            resolved = store.catalog.resolve_for_listing(view)
            views.append(
                {
                    "name": name,
                    "version": view.version,
                    "description": view.description,
                    "features": list(view.features),
                    "join_keys": resolved.join_keys,
                    "request_inputs": resolved.request_inputs,
                    "outputs": resolved.output_names,
                }
            )
        return views

    return BodyLimit(LookupRouter(app, lookup, token=token), max_body_bytes)


def warm(store: FeatureStore) -> None:
    """Connect to Redis and resolve every view now, so the first request is as fast as the rest."""
    store.online.ping()
    for name in store.list_views():
        store.online_read_plan(store.catalog.view(name), store.catalog.needs_full_names(name))


def default_workers() -> int:
    """One worker process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, repo: str | Path = ".", workers: int | None = None) -> None:
    """Run the feature server of the repository at `repo` in `workers` processes (blocks until SIGINT or SIGTERM).

    On SIGTERM each worker stops accepting connections, finishes the requests in
    flight (at most `GRACEFUL_SHUTDOWN_S`), closes its Redis connections and exits; then the server exits 0.
    """
    import uvicorn

    store = FeatureStore.from_repo(repo)
    warm(store)
    app = create_app(store, token=os.environ.get("FEATURE_PLATFORM_SERVER_TOKEN") or None)
    gc.freeze()  # definitions and imports live forever: keep them out of collections (shorter tail latency)
    # No proxy-header rewriting: the server never reads the client's address, and it costs on every request.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False,
                            http=http_protocol(), timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    code = run_workers(config, workers or default_workers())
    if code:
        raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve online features over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.repo, args.workers)


if __name__ == "__main__":
    main()
