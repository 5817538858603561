"""Loading an `AssetSource`: the team's asset, partition by partition, through its own IO manager."""

from datetime import date, datetime

import dagster as dg
import pandas as pd

from feature_platform.errors import SourceError
from feature_platform.sources.upstream import AssetSource
from feature_platform.sources.windows import needed_days


def upstream_key(source: AssetSource) -> dg.AssetKey:
    return dg.AssetKey(list(source.asset_key))


def load_asset_source(
    context: dg.AssetExecutionContext, source: AssetSource, partitions: dg.PartitionsDefinition | None,
    start: datetime | None, end: datetime | None,
) -> pd.DataFrame:
    """The rows of `source` a run of `[start, end)` needs, each day loaded by the asset's IO manager."""
    manager = getattr(context.resources, source.io_manager_key)
    key = upstream_key(source)
    if source.partitions is None or partitions is None or start is None or end is None:
        try:
            value = manager.load_input(dg.build_input_context(asset_key=key))
        except FileNotFoundError:
            raise SourceError(f"asset source '{source.name}': asset {source.key_label} has never been materialized; materialize it first") from None
        return source.combine({date.min: value}, [], start, end)
    loaded, missing = {}, []
    for day in needed_days(source.partitions, start, end):
        input_context = dg.build_input_context(asset_key=key, partition_key=day.isoformat(), asset_partitions_def=partitions)
        try:
            loaded[day] = manager.load_input(input_context)
        except FileNotFoundError:
            missing.append(day)
    return source.combine(loaded, missing, start, end)
