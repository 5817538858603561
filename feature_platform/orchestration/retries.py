"""Retry policy: only transient I/O retries; user code, contract, definition and lasting storage errors fail once.

Dagster retries every exception an asset raises under its `RetryPolicy`, except
a `dg.Failure(allow_retries=False)`. `permanent_failures(scope)` turns every
error that a retry would only repeat (a bug in a compute function, a contract
violation, a bad definition, a permission denied, a missing source partition)
into such a failure, whose description names the group, the partitions and the
root cause. What may heal is re-raised untouched for `TRANSIENT_RETRY`: lost
connections and timeouts (Redis, S3, PostgreSQL), and Delta commit races.
"""

import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import redis
from deltalake.exceptions import CommitFailedError

from feature_platform.errors import FeaturePlatformError

TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3,
    delay=2,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    CommitFailedError,
)


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what caused it, as Python chains them (an explicit `from` first)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ if seen.__cause__ is not None else (None if seen.__suppress_context__ else seen.__context__)


def is_transient(error: BaseException) -> bool:
    """Whether `error` is I/O that may heal on a retry (a lost connection, a timeout, a commit race).

    Our own errors say the input, the definitions or the storage's answer is wrong, so they never are,
    unless they mark themselves `transient`.
    """
    if isinstance(error, FeaturePlatformError):
        return bool(getattr(error, "transient", False))
    return any(isinstance(e, TRANSIENT_ERRORS) for e in causes(error))


def _is_library(filename: str) -> bool:
    return any(part in filename for part in ("/feature_platform/", "/site-packages/", "/dagster", sysconfig.get_paths()["stdlib"]))


def where_raised(error: BaseException) -> str:
    """` (in function, file:line)` of the innermost frame of the user's code (not a library's), or ''."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not _is_library(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (in {frame.name}, {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"


def describe(error: BaseException) -> str:
    """The error as one line: our errors by their message, others by type, message and where they were raised."""
    if isinstance(error, FeaturePlatformError):
        return str(error)
    return f"{type(error).__name__}: {error}{where_raised(error)}"


@contextmanager
def permanent_failures(scope: str = "") -> Iterator[None]:
    """Errors a retry would repeat become one non-retryable failure saying `scope: root cause`; transient I/O passes."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        if is_transient(error):
            raise
        raise dg.Failure(
            description=scoped(scope, describe(error)),
            metadata={"error": type(error).__name__, "retryable": False},
            allow_retries=False,
        ) from error


def scoped(scope: str, message: str) -> str:
    """`scope: message`, without repeating the subject both start with (`feature group 'g'`)."""
    if not scope:
        return message
    subject = scope.split(",")[0]
    if message.startswith(subject + ": "):
        return f"{scope}: {message[len(subject) + 2:]}"
    return f"{scope}: {message}"
