"""The HTTP feature server: online vectors and pushes over FastAPI.

`python -m feature_platform.serving.server --repo .` (or `feature-platform serve`) binds
127.0.0.1:6566 by default. When `FEATURE_PLATFORM_SERVER_TOKEN` is set every
data endpoint wants `Authorization: Bearer <token>`. Bad requests get a 4xx
with a message; the OpenAPI schema is at `/openapi.json`, docs at `/docs`.
"""

import argparse
import gc
import hmac
import json
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feature_platform.errors import DefinitionMismatchError, FeaturePlatformError, RegistryError
from feature_platform.online.store import OnlineStoreError
from feature_platform.store import FeatureStore

DEFAULT_PORT = 6566
MAX_BODY_BYTES = 4 * 1024 * 1024


class OnlineFeaturesRequest(BaseModel):
    """Entities as columns of values, and either feature references or a feature view's name."""

    model_config = ConfigDict(extra="forbid")
    entities: dict[str, list[Any]] = Field(examples=[{"user_id": [1, 2], "amount": [120.0, 8.5]}])
    features: list[str] | None = Field(default=None, examples=[["user_profile:age"]])
    feature_view: str | None = Field(default=None, examples=["fraud_detection"])
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
    """Rows for one feature group, as columns of values; times as ISO strings (naive = UTC)."""

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


def create_app(store: FeatureStore, *, token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The feature server app over `store`; `token`, if set, is required as a bearer token."""
    app = FastAPI(title="feature-platform feature server", version="1")
    expected = f"Bearer {token}".encode() if token else None

    async def authorised(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(OnlineStoreError)
    async def unavailable(request: Request, exc: OnlineStoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(DefinitionMismatchError)
    @app.exception_handler(RegistryError)
    async def not_applied(request: Request, exc: FeaturePlatformError) -> JSONResponse:
        # The server's definitions are not the applied ones: no request can be served until they are.
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FeaturePlatformError)
    async def bad_request(request: Request, exc: FeaturePlatformError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.post("/get-online-features", response_model=OnlineFeaturesResponse, dependencies=[Depends(authorised)])
    async def get_online_features(body: OnlineFeaturesRequest) -> Response:
        # Async on purpose: one local Redis round trip costs less than a hop to the thread pool.
        features: Any = body.feature_view if body.feature_view is not None else body.features
        result = store.get_online_features(body.entities, features, full_feature_names=body.full_feature_names)
        content = {"features": result.to_dict(), "statuses": result.statuses}
        return Response(json.dumps(content, default=_json_default), media_type="application/json")

    @app.post("/push", dependencies=[Depends(authorised)])
    def push(body: PushRequest) -> dict[str, Any]:
        group = store.group(body.group)
        try:
            frame = pd.DataFrame(body.rows)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"push rows: {exc}") from None
        for column in [group.event_time, group.created_time]:
            if column and column in frame.columns:
                try:
                    frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
                except (ValueError, TypeError) as exc:
                    raise HTTPException(status_code=400, detail=f"push to '{group.name}': column '{column}': {exc}") from None
        try:
            rows = store.push(body.group, frame, to=body.to)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return {"group": body.group, "rows": rows, "to": body.to}

    @app.get("/health")
    def health() -> JSONResponse:
        """Whether Redis answers, and which Redis it is (kind, host, port, TLS, embedded; never credentials)."""
        try:
            reachable = store.online.ping()
            redis_endpoint = store.online_endpoint()
        except FeaturePlatformError:  # e.g. the embedded server cannot start
            reachable, redis_endpoint = False, None
        content = {"status": "ok" if reachable else "degraded", "redis": reachable, "redis_endpoint": redis_endpoint, "environment": store.environment}
        return JSONResponse(content, status_code=200 if reachable else 503)

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

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def _json_default(value: Any) -> Any:
    """Datetimes and dates as ISO strings (stored nulls are already None, never NaN)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def warm(store: FeatureStore) -> None:
    """Connect to Redis and resolve every view now, so the first request is as fast as the rest."""
    store.online.ping()
    for name in store.list_views():
        store.catalog.resolve_for_listing(name)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, repo: str | Path = ".") -> None:
    """Run the feature server of the repository at `repo` with uvicorn (blocks)."""
    import uvicorn

    store = FeatureStore.from_repo(repo)
    warm(store)
    app = create_app(store, token=os.environ.get("FEATURE_PLATFORM_SERVER_TOKEN") or None)
    gc.freeze()  # definitions and imports live forever: keep them out of collections (shorter tail latency)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve online features over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--repo", default=".")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.repo)


if __name__ == "__main__":
    main()
