"""The days a run reads from a source, and the check that each of them has data.

A run of `[start, end)` with a lookback reads `[start - lookback, end)`; days before
the source's first partition are not needed (there is nothing to miss). A needed
day without data is an error naming the source and the days, never an empty frame.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from feature_platform.definitions.concepts import DailyPartitions
from feature_platform.errors import SourceError


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (naive ones are UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def needed_days(partitions: DailyPartitions, start: datetime, end: datetime) -> list[date]:
    """The days of `[start, end)` that the source's partitions cover."""
    first = max(utc(start).date(), partitions.start)  # type: ignore[type-var]
    days = []
    day = first
    while datetime(day.year, day.month, day.day, tzinfo=timezone.utc) < utc(end):
        if partitions.end is None or day < partitions.end:  # type: ignore[operator]
            days.append(day)
        day += timedelta(days=1)
    return days


def days_label(days: Iterable[date]) -> str:
    """`2024-05-01, 2024-05-02` (the first five, then how many more)."""
    days = sorted(days)
    shown = ", ".join(d.isoformat() for d in days[:5])
    return shown + (f" and {len(days) - 5} more" if len(days) > 5 else "")


def missing_days_error(kind: str, name: str, days: Iterable[date], where: str, fix: str) -> SourceError:
    return SourceError(f"{kind} '{name}' has no data for {days_label(days)} ({where}): {fix}")


def in_window(frame: pd.DataFrame, column: str, start: datetime, end: datetime, *, source: str) -> pd.DataFrame:
    """The rows of `frame` with `start <= column < end`; the column as UTC timestamps (naive ones are UTC)."""
    if column not in frame.columns:
        raise SourceError(f"source '{source}' has no time column '{column}'; columns: {list(frame.columns)}")
    times = pd.to_datetime(frame[column], utc=True)
    inside = (times >= pd.Timestamp(utc(start))) & (times < pd.Timestamp(utc(end)))
    return frame.assign(**{column: times})[inside].reset_index(drop=True)


def days_present(frame: pd.DataFrame, column: str) -> set[date]:
    """The UTC days that have at least one row."""
    return set(pd.to_datetime(frame[column], utc=True).dt.date.unique())


def check_days(frame: pd.DataFrame, column: str, days: list[date], *, kind: str, name: str, where: str) -> pd.DataFrame:
    """`frame` if every needed day has a row, else a `SourceError` naming the missing days."""
    missing = sorted(set(days) - days_present(frame, column))
    if missing:
        raise missing_days_error(kind, name, missing, where, "load those days first, or set allow_empty_days=True if they have no rows")
    return frame
