"""Which Redis a process talks to: the configured URL, or the embedded server, but only in development.

`FEATURE_PLATFORM_ENV` is `development` (the default: a laptop, where a missing
`FEATURE_PLATFORM_REDIS_URL` starts the embedded `redis-server`) or `production`
(a missing URL is an error, so a pod that lost its configuration fails at
start-up instead of serving NOT_FOUND from an empty embedded Redis).
"""

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from feature_platform.errors import FeaturePlatformError

ENV_VARIABLE = "FEATURE_PLATFORM_ENV"
URL_VARIABLE = "FEATURE_PLATFORM_REDIS_URL"
ENVIRONMENTS = ("development", "production")


class ConfigurationError(FeaturePlatformError):
    """The process is configured in a way that would serve wrong or empty values."""


def environment(value: str | None = None) -> str:
    """`value`, else `$FEATURE_PLATFORM_ENV`, else `development`; anything else is a ConfigurationError."""
    chosen = value if value is not None else os.environ.get(ENV_VARIABLE) or "development"
    if chosen not in ENVIRONMENTS:
        raise ConfigurationError(f"{ENV_VARIABLE}={chosen!r} is not one of {list(ENVIRONMENTS)}")
    return chosen


MISSING_URL = (
    f"{ENV_VARIABLE}=production and no {URL_VARIABLE}: set it to the production Redis "
    "(redis://, rediss://, redis+cluster://); the embedded Redis starts only in development"
)


def online_url(url: str | None, environment_name: str, start_embedded: Callable[[], str]) -> str:
    """`url` if set; in development the embedded server's URL (started by `start_embedded`); in production an error."""
    if url:
        return url
    if environment_name == "production":
        raise ConfigurationError(MISSING_URL)
    return start_embedded()


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Fail now, at start-up, if this process is in production without a Redis URL (e.g. a Dagster code location)."""
    env = os.environ if env is None else env
    if environment(env.get(ENV_VARIABLE) or None) == "production" and not env.get(URL_VARIABLE):
        raise ConfigurationError(MISSING_URL)


def describe(url: str, *, embedded: bool) -> dict[str, Any]:
    """What a health check says about the Redis: kind, host, port, TLS, embedded; never credentials."""
    parts = urlsplit(url)
    kind = "unix" if parts.scheme == "unix" else "cluster" if parts.scheme.endswith("+cluster") else "server"
    return {
        "kind": kind,
        "host": parts.path if kind == "unix" else parts.hostname,
        "port": None if kind == "unix" else parts.port or 6379,
        "tls": parts.scheme.startswith("rediss"),
        "embedded": embedded,
    }
