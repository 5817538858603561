"""Integers stay exact on every read path: offline reads, retrieval, online frames, training datasets.

A nullable int column must never pass through float64, where 2**53 + 1
becomes 9007199254740992.0. Columns with missing values come back as pandas
`Int64`, complete ones as `int64`; float matrices refuse what they cannot hold.
"""

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup, FeatureStore, FeatureView
from feature_platform.errors import FeaturePlatformError

user = Entity("user", join_keys={"user_id": "int64"})
counts = FeatureGroup(
    "counts",
    entities=[user],
    features=[Feature("count", "int64"), Feature("small", "int32")],
    partitions=DailyPartitions(start="2024-05-01"),
)
view = FeatureView("counts_view", features=["counts:count", "counts:small"])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
EDGES = st.sampled_from([2**53 + 1, -(2**53) - 1, 2**62 + 3, 2**63 - 1, -(2**63), 2**53 - 1])
VALUES = st.lists(st.one_of(st.none(), INT64, EDGES), min_size=1, max_size=12)


def store_with(root: Path, redis_url: str | None = None) -> FeatureStore:
    store = FeatureStore(groups=[counts], views=[view], offline_root=root / "offline", online_url=redis_url, project="ints")
    store.apply()
    return store


def rows(values: list[int | None]) -> pd.DataFrame:
    """One user per value at noon of 2024-05-01; `small` holds a small int or null alike."""
    return pd.DataFrame(
        {
            "user_id": range(len(values)),
            "event_time": pd.Timestamp("2024-05-01 12:00", tz="UTC"),
            "count": pd.array(values, dtype="Int64"),
            "small": pd.array([None if v is None else v % 1000 for v in values], dtype="Int32"),
        }
    )


def entities(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(n), "event_time": pd.Timestamp("2024-05-01 13:00", tz="UTC")})


def exact(column: pd.Series) -> list[int | None]:
    """The values as Python ints (None where missing), failing on any float."""
    assert not pd.api.types.is_float_dtype(column.dtype), column.dtype
    assert str(column.dtype) in ("int64", "Int64", "int32", "Int32"), column.dtype
    return [None if pd.isna(v) else int(v) for v in column]


SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(VALUES)
def test_offline_reads_retrieval_and_training_datasets_keep_every_int64_exact(tmp_path_factory: pytest.TempPathFactory, values: list) -> None:
    store = store_with(tmp_path_factory.mktemp("ints"))
    store.write_partition("counts", "2024-05-01", rows(values))
    small = [None if v is None else v % 1000 for v in values]

    stored = store.read_group("counts").sort_values("user_id")
    assert exact(stored["count"]) == values and exact(stored["small"]) == small
    historical = store.get_historical_features(entities(len(values)), view)
    assert exact(historical["count"]) == values and exact(historical["small"]) == small
    store.create_training_dataset("counts_view", entities(len(values)))
    loaded = store.load_training_dataset("counts_view")
    assert exact(loaded["count"]) == values and exact(loaded["small"]) == small
    assert store.load_training_dataset("counts_view", format="arrow").column("count").to_pylist() == values


@SETTINGS
@given(VALUES)
def test_online_frames_and_dicts_keep_every_int64_exact(tmp_path_factory: pytest.TempPathFactory, redis_url: str, values: list) -> None:
    store = store_with(tmp_path_factory.mktemp("ints"), redis_url)
    store.push("counts", rows(values), to="online")
    response = store.get_online_features({"user_id": list(range(len(values)))}, view)

    assert response.to_dict()["count"] == values
    frame = response.to_df()
    assert exact(frame["count"]) == values
    assert exact(frame["user_id"]) == list(range(len(values)))


def test_a_null_beside_2_53_plus_1_reads_back_as_nullable_int64_everywhere(tmp_path: Path, redis_url: str) -> None:
    store = store_with(tmp_path, redis_url)
    store.write_partition("counts", "2024-05-01", rows([2**53 + 1, None]))
    store.sync_to_online("counts")

    assert store.read_group("counts").sort_values("user_id")["count"].dtype == "Int64"
    assert store.read_group("counts").sort_values("user_id")["count"].tolist()[0] == 2**53 + 1
    online = store.get_online_features({"user_id": [0, 1]}, view).to_df()
    assert online["count"].dtype == "Int64" and online["count"][0] == 2**53 + 1 and online["count"].isna()[1]
    historical = store.get_historical_features(entities(2), view)
    pd.testing.assert_series_equal(historical["count"].reset_index(drop=True), online["count"], check_names=False)


def test_a_float_matrix_refuses_integers_it_cannot_hold_exactly(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.write_partition("counts", "2024-05-01", rows([2**53 + 1, 5]))
    store.create_training_dataset("counts_view", entities(2))
    with pytest.raises(FeaturePlatformError, match="integer column 'count' holds values of magnitude .* format='pandas' or 'arrow'"):
        store.load_training_dataset("counts_view", format="numpy")


def test_a_float_matrix_holds_integers_below_2_53_exactly(tmp_path: Path) -> None:
    store = store_with(tmp_path)
    store.write_partition("counts", "2024-05-01", rows([2**53 - 1, None]))
    store.create_training_dataset("counts_view", entities(2))
    matrix = store.load_training_dataset("counts_view", format="numpy")
    assert int(matrix[0, 0]) == 2**53 - 1 and pd.isna(matrix[1, 0])
