"""Training datasets: versions and manifests, splits, load formats, and exact rebuilds."""

import importlib.util
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from feature_platform import (
    DefinitionError,
    EntityFrameError,
    FeaturePlatformError,
    FeatureView,
    RandomSplit,
    TimeSplit,
)
from tests.retrieval_fixtures import make_store, merchant_rows, numeric_view, user_rows


@pytest.fixture
def store(tmp_path: Path):
    """Users 1 and 2 on May 1 (noon) and merchant 7 on May 1 (midnight)."""
    store = make_store(tmp_path)
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a"), 2: (5, 20.0, "b")}))
    store.write_partition("merchant_stats", "2024-05-01", merchant_rows("2024-05-01", {7: (100, 0.25)}))
    return store


def labels(rows: int = 10) -> pd.DataFrame:
    """Labelled entity rows: users 1, 2 and the unknown 3 in turn, every 3 hours from May 1 06:00."""
    return pd.DataFrame(
        {
            "user_id": [(i % 3) + 1 for i in range(rows)],
            "merchant_id": 7,
            "event_time": [pd.Timestamp("2024-05-01 06:00") + timedelta(hours=3 * i) for i in range(rows)],
            "amount": [float(i) for i in range(rows)],
            "is_fraud": [i % 4 == 0 for i in range(rows)],
        }
    )


def test_create_stores_rows_and_a_manifest(store):
    dataset = store.create_training_dataset("numeric", labels(), label="is_fraud", description="first try")
    manifest = dataset.manifest
    assert (dataset.name, dataset.version) == ("numeric", 1)
    assert dataset.uri.endswith("/test/_training/numeric/v1")
    assert manifest["view"] == {"name": "numeric", "version": 1}
    assert manifest["group_versions"] == {"user_stats": 0, "merchant_stats": 0}
    assert manifest["row_count"] == 10 and manifest["label"] == "is_fraud" and manifest["description"] == "first try"
    assert manifest["features"] == ["txn_count", "amount_mean", "fraud_rate"]
    assert [c["name"] for c in manifest["schema"]] == [*labels().columns, "txn_count", "amount_mean", "fraud_rate"]
    assert pd.Timestamp(manifest["created_at"]).tzinfo is not None
    assert manifest["split"] is None


def test_loaded_dataset_equals_the_point_in_time_join(store):
    entity_df = labels()
    store.create_training_dataset("numeric", entity_df)
    expected = store.get_historical_features(entity_df, "numeric")
    expected["event_time"] = expected["event_time"].astype("datetime64[us]")  # Delta stores microseconds
    pd.testing.assert_frame_equal(store.load_training_dataset("numeric"), expected)


def test_each_create_adds_a_version_and_all_are_listed(store):
    store.create_training_dataset("numeric", labels(4))
    store.create_training_dataset("numeric", labels(6), name="numeric_big")
    second = store.create_training_dataset("numeric", labels(8))
    assert second.version == 2
    listed = [(m["name"], m["version"], m["row_count"]) for m in store.list_training_datasets()]
    assert listed == [("numeric", 1, 4), ("numeric", 2, 8), ("numeric_big", 1, 6)]
    assert len(store.load_training_dataset("numeric", version=1)) == 4
    assert len(store.load_training_dataset("numeric")) == 8


def test_random_split_is_seeded_with_exact_counts(store):
    split = RandomSplit({"train": 0.6, "validation": 0.2, "test": 0.2}, seed=3)
    dataset = store.create_training_dataset("numeric", labels(), split=split)
    assert dataset.manifest["split_counts"] == {"train": 6, "validation": 2, "test": 2}
    again = store.create_training_dataset("numeric", labels(), split=split)
    first, second = (store.load_training_dataset("numeric", version=v)["_split"].tolist() for v in (1, 2))
    assert first == second
    train = store.load_training_dataset("numeric", split="train")
    assert len(train) == 6 and "_split" not in train.columns
    assert again.manifest["split"] == {"kind": "random", "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}, "seed": 3}


def test_time_split_labels_rows_by_time_and_leaves_out_the_rest(store):
    split = TimeSplit({"train": (None, "2024-05-01 12:00"), "test": ("2024-05-01 15:00", "2024-05-01 21:00")})
    dataset = store.create_training_dataset("numeric", labels(), split=split)
    # rows at 06, 09 → train; 15, 18 → test; 12 and 21 onwards fall in no range.
    assert dataset.manifest["split_counts"] == {"train": 2, "test": 2}
    assert dataset.row_count == 4
    test = store.load_training_dataset("numeric", split="test")
    assert test["event_time"].dt.hour.tolist() == [15, 18]


def test_numpy_format_returns_features_and_label(store):
    store.create_training_dataset("numeric", labels(3), label="is_fraud")
    X, y = store.load_training_dataset("numeric", format="numpy")
    np.testing.assert_array_equal(X, np.array([[np.nan, np.nan, 0.25], [np.nan, np.nan, 0.25], [np.nan, np.nan, 0.25]]))
    assert y.tolist() == [True, False, False]
    later = store.create_training_dataset("numeric", labels(6).iloc[3:], label=None)
    X_only = store.load_training_dataset("numeric", version=later.version, format="numpy")
    np.testing.assert_array_equal(X_only[:, 0], [3.0, 5.0, np.nan])


def test_numpy_format_refuses_string_features(store):
    store.create_training_dataset("risk", labels(3))
    with pytest.raises(FeaturePlatformError, match="feature 'segment' is string, not numeric"):
        store.load_training_dataset("risk", format="numpy")


def test_arrow_format_is_a_table_in_row_order(store):
    store.create_training_dataset("numeric", labels())
    table = store.load_training_dataset("numeric", format="arrow")
    assert isinstance(table, pa.Table)
    assert table.column("amount").to_pylist() == [float(i) for i in range(10)]


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_torch_format_without_torch_says_how_to_install_it(store):
    store.create_training_dataset("numeric", labels(3), label="is_fraud")
    with pytest.raises(ImportError, match=r"format='torch' needs PyTorch"):
        store.load_training_dataset("numeric", format="torch")


def test_rebuild_after_new_data_equals_the_stored_version(store):
    split = RandomSplit({"train": 0.7, "test": 0.3}, seed=11)
    store.create_training_dataset("risk", labels(), split=split)
    # New and corrected data arrive: an overwrite, an append that ties old rows, and a new day.
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (30, 100.0, "x"), 3: (1, 1.0, "y")}))
    store.ingest("merchant_stats", merchant_rows("2024-05-01", {7: (999, 0.99)}))
    store.write_partition("user_stats", "2024-05-02", user_rows("2024-05-02", {2: (6, 21.0, "b")}, hour=0))
    rebuilt = store.rebuild_training_dataset("risk", 1)
    pd.testing.assert_frame_equal(rebuilt, store.load_training_dataset("risk", version=1))
    fresh = store.create_training_dataset("risk", labels(), split=split)
    assert not store.load_training_dataset("risk", version=fresh.version).equals(rebuilt)


def test_rebuild_refuses_a_changed_view_version(store, tmp_path):
    store.create_training_dataset("numeric", labels(3))
    changed = FeatureView("numeric", features=list(numeric_view.features), version=2)
    newer = make_store(tmp_path, views=(changed,))
    with pytest.raises(FeaturePlatformError, match="view 'numeric' version 1, the repository now defines version 2"):
        newer.rebuild_training_dataset("numeric", 1)


def test_unknown_dataset_version_and_split_are_errors(store):
    with pytest.raises(FeaturePlatformError, match="no training dataset 'nope'"):
        store.load_training_dataset("nope")
    store.create_training_dataset("numeric", labels(3), split=RandomSplit({"train": 1.0}))
    with pytest.raises(FeaturePlatformError, match=r"has no version 5; versions: \[1\]"):
        store.load_training_dataset("numeric", version=5)
    with pytest.raises(FeaturePlatformError, match=r"has no split 'test'; splits: \['train'\]"):
        store.load_training_dataset("numeric", split="test")


def test_label_must_be_an_entity_column(store):
    with pytest.raises(EntityFrameError, match="label column 'fraud' is not in the entity frame"):
        store.create_training_dataset("numeric", labels(3), label="fraud")


def test_reserved_columns_are_refused(store):
    with pytest.raises(EntityFrameError, match=r"\['_split'\] are reserved"):
        store.create_training_dataset("numeric", labels(3).assign(_split="x"))


def test_bad_split_definitions_are_refused():
    with pytest.raises(DefinitionError, match="must sum to 1"):
        RandomSplit({"train": 0.5, "test": 0.4})
    with pytest.raises(DefinitionError, match="'a' and 'b' overlap"):
        TimeSplit({"a": ("2024-01-01", "2024-02-01"), "b": ("2024-01-15", None)})
