"""Window aggregations shared by the demo's feature groups.

Every feature row of day `d` has event time `d 00:00 UTC` and aggregates the
transactions of the `days` days before it, `[d - days, d)`: known at `d`,
never reading the future.
"""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pandas as pd


def daily_windows(
    events: pd.DataFrame,
    start: datetime,
    end: datetime,
    keys: Sequence[str],
    windows: dict[int, Callable[[pd.core.groupby.DataFrameGroupBy], pd.DataFrame]],
) -> pd.DataFrame:
    """For each day in `[start, end)`, aggregate `events` by `keys` over each window of N days.

    `windows` maps a window length in days to a function from the grouped
    window to feature columns. Keys without events in the longest window get no row.
    
    """
    frames = []
    day = pd.Timestamp(start)
    while day < pd.Timestamp(end):
        parts = []
        for days, aggregate in sorted(windows.items(), reverse=True):
            inside = events[(events["event_time"] >= day - timedelta(days=days)) & (events["event_time"] < day)]
            parts.append(aggregate(inside.groupby(list(keys), sort=True)))
        frame = pd.concat(parts, axis=1)  # the longest window holds every key of the shorter ones
        frames.append(frame.reset_index().assign(event_time=day))
        day += timedelta(days=1)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
