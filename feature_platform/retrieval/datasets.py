"""Declared training datasets: a view joined onto labelled entity rows taken from a raw source.

The Dagster layer turns each declaration into an asset downstream of the raw
source and of the view's feature groups, so lineage reads raw → groups →
training dataset. Without Dagster, `build(store, raw_root)` does the same.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from feature_platform.definitions.concepts import check_name, to_date
from feature_platform.definitions.references import Catalog
from feature_platform.errors import DefinitionError
from feature_platform.offline.store import OfflineStore
from feature_platform.retrieval.splits import Split
from feature_platform.retrieval.training import TrainingDataset, create_training_dataset
from feature_platform.sources.landing import RawSource


@dataclass(frozen=True)
class TrainingDatasetDefinition:
    """A training dataset of `view` over the rows of raw source `source` (days `first_day..last_day`).

    `columns` are the entity-frame columns kept from the source: join keys, the
    time column, the `label` and any request-time inputs of the view.

    >>> TrainingDatasetDefinition("fraud_training", view="fraud_detection", source="transactions",
    ...     columns=["user_id", "event_time", "amount", "is_fraud"], label="is_fraud",
    ...     first_day="2024-04-08", last_day="2024-05-15")
    """

    name: str
    view: str
    source: str
    columns: Sequence[str]
    label: str | None = None
    first_day: date | str | None = None
    last_day: date | str | None = None
    split: Split | None = None
    timestamp_column: str = "event_time"
    description: str = ""
    owner: str = ""

    def __post_init__(self) -> None:
        check_name("training dataset", self.name)
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.timestamp_column not in self.columns:
            raise DefinitionError(f"training dataset '{self.name}': columns must include the time column '{self.timestamp_column}'")
        if self.label is not None and self.label not in self.columns:
            raise DefinitionError(f"training dataset '{self.name}': columns must include the label '{self.label}'")
        for attribute in ("first_day", "last_day"):
            value = getattr(self, attribute)
            if value is not None:
                object.__setattr__(self, attribute, to_date(value))
        if self.first_day and self.last_day and self.last_day < self.first_day:
            raise DefinitionError(f"training dataset '{self.name}': last_day is before first_day")

    def entity_frame(self, raw_root: str, source: RawSource) -> pd.DataFrame:
        """The labelled entity rows: the kept columns of the source's rows over the window."""
        if source.partitions is None:
            frame = source.read(raw_root)
        else:
            if self.first_day is None or self.last_day is None:
                raise DefinitionError(f"training dataset '{self.name}': source '{source.name}' is daily, give first_day and last_day")
            start = datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=timezone.utc)
            end = datetime(self.last_day.year, self.last_day.month, self.last_day.day, tzinfo=timezone.utc) + timedelta(days=1)
            frame = source.read(raw_root, start, end)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DefinitionError(f"training dataset '{self.name}': source '{source.name}' has no column(s) {missing}")
        return frame[list(self.columns)].reset_index(drop=True)

    def build(
        self, catalog: Catalog, offline: OfflineStore, sources: Mapping[str, RawSource], raw_root: str
    ) -> TrainingDataset:
        """Read the entity rows and store the next version of the dataset."""
        if self.source not in sources:
            raise DefinitionError(f"training dataset '{self.name}': unknown raw source '{self.source}'; known: {sorted(sources)}")
        entity_df = self.entity_frame(raw_root, sources[self.source])
        return create_training_dataset(
            catalog, offline, self.view, entity_df, name=self.name, split=self.split, description=self.description or None,
            label=self.label, timestamp_column=self.timestamp_column,
        )
