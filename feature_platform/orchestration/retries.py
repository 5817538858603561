"""Retry policy: transient failures retry with backoff, contract and definition errors never do.

Dagster retries every exception an asset raises under its `RetryPolicy`, except
a `dg.Failure(allow_retries=False)`. Our own errors (`FeaturePlatformError`:
contract violations, bad definitions, unknown references) say the input is
wrong, so a retry would fail the same way; `permanent_failures()` turns them
into non-retryable failures. Everything else (Redis connection errors, S3
errors, Delta `CommitFailedError` beyond the store's own retries, timeouts)
is retried by `TRANSIENT_RETRY`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from feature_platform.errors import FeaturePlatformError

TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3,
    delay=2,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)


@contextmanager
def permanent_failures() -> Iterator[None]:
    """Re-raise platform errors (bad data or definitions; they name group, column and rule) as non-retryable."""
    try:
        yield
    except FeaturePlatformError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"error": type(exc).__name__, "retryable": False},
            allow_retries=False,
        ) from exc
