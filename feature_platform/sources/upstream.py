"""Any Dagster asset of the team's code location as a source, by its asset key, loaded through its own IO manager.

    orders = AssetSource("orders", asset_key=["shop", "orders"], partitions=DailyPartitions(start="2024-05-01"))

The feature group's asset depends on it (one lineage graph) with a time-window partition
mapping that covers the group's lookback; a run loads each needed day's partition through
the asset's IO manager (`io_manager_key`), and a day never materialized is an error naming
the asset and the day. An unpartitioned asset is loaded whole (and, with `time_column`,
filtered to the run's window). The Dagster layer does the loading; this module says what to load.
"""

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import pandas as pd

from feature_platform.definitions.concepts import DailyPartitions, check_name
from feature_platform.errors import DefinitionError, SourceError
from feature_platform.sources.frames import to_pandas
from feature_platform.sources.windows import in_window, missing_days_error


@dataclass(frozen=True)
class AssetSource:
    """The asset at `asset_key` (a key path), daily `partitions` like the asset's own, or None for an unpartitioned one."""

    name: str
    _: KW_ONLY
    asset_key: Sequence[str] | str = ()
    partitions: DailyPartitions | None = None
    time_column: str | None = None
    io_manager_key: str = "io_manager"
    allow_empty_days: bool = False
    description: str = ""
    owner: str = ""
    kind: ClassVar[str] = "asset"

    def __post_init__(self) -> None:
        check_name("asset source", self.name)
        path = (self.asset_key,) if isinstance(self.asset_key, str) else tuple(self.asset_key)
        if not path or not all(isinstance(p, str) and p for p in path):
            raise DefinitionError(f"asset source '{self.name}': asset_key must be the asset's key path, e.g. ['shop', 'orders']")
        object.__setattr__(self, "asset_key", path)
        if self.partitions is not None and not isinstance(self.partitions, DailyPartitions):
            raise DefinitionError(f"asset source '{self.name}': partitions must be DailyPartitions(...) like the asset's, or None")

    @property
    def key_label(self) -> str:
        return "/".join(self.asset_key)

    def combine(self, loaded: Mapping[date, Any], missing: Sequence[date], start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """One frame from the loaded partitions (or the one unpartitioned value under any key); missing days are an error."""
        if missing:
            raise missing_days_error("asset source", self.name, missing, f"asset {self.key_label}",
                                     f"materialize {self.key_label} for those days first")
        what = f"the IO manager of asset {self.key_label}"
        frames = [to_pandas(value, what=what) for _, value in sorted(loaded.items())]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if self.time_column is None or start is None or end is None:
            return frame
        frame = in_window(frame, self.time_column, start, end, source=self.name)
        if self.partitions is not None or self.allow_empty_days:
            return frame
        if frame.empty:
            raise SourceError(f"asset source '{self.name}': asset {self.key_label} has no rows in {start.date()}..{end.date()}; "
                              "materialize it first, or set allow_empty_days=True")
        return frame
