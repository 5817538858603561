"""Loader helpers a training script uses: the demo repository's store, configured by the environment."""

from pathlib import Path

import pandas as pd
import pytest

from feature_platform import connect, list_views, load_features, load_training_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo repository's store on an empty home folder, with two user profiles written."""
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(REPO))
    monkeypatch.delenv("FEATURE_PLATFORM_OFFLINE_ROOT", raising=False)
    store = connect(refresh=True)
    store.apply()
    profiles = pd.DataFrame(
        {
            "user_id": [1, 2],
            "event_time": pd.to_datetime(["2023-01-01", "2023-02-01"], utc=True),
            "age": [30, 40],
            "home_country": ["DE", "FR"],
            "is_premium": [False, True],
        }
    )
    store.write_partition("user_profile", None, profiles)
    yield store
    connect(refresh=True)


def test_connect_uses_the_repository_and_the_environment(store, tmp_path):
    assert store.offline.root == str(tmp_path / "offline")
    assert "fraud_detection" in store.list_views()
    assert connect() is store


def test_list_views_names_each_feature_with_its_dtype_and_source(store):
    (fraud,) = [v for v in list_views() if v["name"] == "fraud_detection"]
    assert {"name": "age", "dtype": "int64", "source": "user_profile:age"} in fraud["features"]
    assert {"name": "amount_to_user_mean_30d", "dtype": "double", "source": "on-demand:amount_vs_history"} in fraud["features"]
    assert fraud["join_keys"] == ["user_id", "merchant_id", "country"] and fraud["request_inputs"] == ["amount"]


def test_load_features_and_training_dataset(store):
    entities = pd.DataFrame({"user_id": [2, 1], "event_time": pd.to_datetime(["2023-03-01", "2022-12-01"])})
    features = load_features(["user_profile:age", "user_profile:is_premium"], entities)
    assert features["age"].tolist() == [40, pd.NA]
    frame = entities.assign(merchant_id=[5, 6], country=["DE", "FR"], amount=[10.0, 20.0], is_fraud=[True, False])
    store.create_training_dataset("fraud_detection", frame, name="fraud_profiles", label="is_fraud")
    X, y = load_training_dataset("fraud_profiles", format="numpy")
    assert X.shape == (2, 14) and y.tolist() == [True, False]
