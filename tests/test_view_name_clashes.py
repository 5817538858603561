"""A view may combine same-named features of two groups: requests name them with `full_feature_names=True`.

The clash is checked at request time, where the output names are known: a
request without full names is refused naming both features and the fix; one
with them gets `group__feature` columns offline, online, in training datasets
and over HTTP. On-demand transformations must still read and write
unambiguous names, which is checked when the view is defined.
"""

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from feature_platform import Feature, FeatureStore, FeatureView, OnDemandTransformation
from feature_platform.definitions.references import Catalog
from feature_platform.discovery import describe_view
from feature_platform.errors import DefinitionError, FeatureReferenceError
from feature_platform.serving.server import create_app, warm
from tests.retrieval_fixtures import merchant_rows, merchant_stats, user_rows, user_stats

both_counts = FeatureView("both_counts", features=["user_stats:txn_count", "merchant_stats:txn_count", "merchant_stats:fraud_rate"])
CLASH = r"output column 'txn_count' would come from both 'user_stats:txn_count' and 'merchant_stats:txn_count'; pass full_feature_names=True"
OUTPUTS = ["user_stats__txn_count", "merchant_stats__txn_count", "merchant_stats__fraud_rate"]


def make(root: Path, redis_url: str | None = None) -> FeatureStore:
    store = FeatureStore([user_stats, merchant_stats], [both_counts], offline_root=root / "offline", online_url=redis_url, project="clash")
    store.apply()
    store.write_partition("user_stats", "2024-05-01", user_rows("2024-05-01", {1: (3, 10.0, "a"), 2: (4, 20.0, "b")}))
    store.write_partition("merchant_stats", "2024-05-01", merchant_rows("2024-05-01", {7: (90, 0.1)}))
    return store


def entities() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "merchant_id": [7, 8], "event_time": pd.Timestamp("2024-05-01 20:00")})


def test_a_view_of_same_named_features_is_accepted_when_defined(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert store.catalog.needs_full_names("both_counts")
    assert store.catalog.resolve_for_listing("both_counts").output_names == OUTPUTS
    assert describe_view(store, both_counts)["name"] == "both_counts"


def test_retrieval_with_full_names_gives_both_features(tmp_path: Path) -> None:
    frame = make(tmp_path).get_historical_features(entities(), "both_counts", full_feature_names=True)
    assert frame[OUTPUTS].astype(object).where(frame[OUTPUTS].notna(), None).values.tolist() == [[3, 90, 0.1], [4, None, None]]


@pytest.mark.parametrize("features", ["both_counts", both_counts], ids=["by name", "by definition"])
def test_retrieval_without_full_names_is_refused_naming_the_clash_and_the_fix(tmp_path: Path, features: object) -> None:
    with pytest.raises(FeatureReferenceError, match=rf"feature view 'both_counts': {CLASH}"):
        make(tmp_path).get_historical_features(entities(), features)


def test_training_datasets_take_the_view_with_full_names_only(tmp_path: Path) -> None:
    store = make(tmp_path)
    with pytest.raises(FeatureReferenceError, match=CLASH):
        store.create_training_dataset("both_counts", entities())
    store.create_training_dataset("both_counts", entities(), full_feature_names=True)
    loaded = store.load_training_dataset("both_counts")
    assert loaded["user_stats__txn_count"].tolist() == [3, 4] and loaded["merchant_stats__txn_count"].tolist()[0] == 90


def test_online_reads_and_http_serve_the_view_with_full_names(tmp_path: Path, redis_url: str) -> None:
    store = make(tmp_path, redis_url)
    recent = user_rows("2024-05-01", {1: (3, 10.0, "a")}).assign(event_time=pd.Timestamp.now(tz="UTC").floor("s"))
    store.push("user_stats", recent)  # user_stats has a 2-day ttl online
    store.sync_to_online("merchant_stats")
    with pytest.raises(FeatureReferenceError, match=CLASH):
        store.get_online_features({"user_id": [1], "merchant_id": [7]}, "both_counts")
    online = store.get_online_features({"user_id": [1], "merchant_id": [7]}, "both_counts", full_feature_names=True).to_dict()
    assert [online[o] for o in OUTPUTS] == [[3], [90], [0.1]]

    warm(store)  # a server starts with such a view
    client = TestClient(create_app(store))
    listed = {v["name"]: v for v in client.get("/feature-views").json()}
    assert listed["both_counts"]["outputs"] == OUTPUTS
    body = {"entities": {"user_id": [1], "merchant_id": [7]}, "feature_view": "both_counts"}
    refused = client.post("/get-online-features", json=body)
    assert refused.status_code == 400 and "full_feature_names=True" in refused.json()["detail"]
    answer = client.post("/get-online-features", json={**body, "full_feature_names": True})
    assert answer.status_code == 200 and answer.json()["features"]["merchant_stats__txn_count"] == [90]


def ratio(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"ratio": df["txn_count"] / df["fraud_rate"]})


def test_an_on_demand_input_that_two_groups_provide_is_refused_when_defined() -> None:
    view = FeatureView(
        "ambiguous_input",
        features=["user_stats:txn_count", "merchant_stats:txn_count", "merchant_stats:fraud_rate"],
        on_demand=[OnDemandTransformation("ratio", ratio, outputs=[Feature("ratio", "float64")], inputs=["txn_count", "fraud_rate"])],
    )
    with pytest.raises(DefinitionError, match=r"on-demand 'ratio' reads 'txn_count', which is ambiguous here: \['user_stats:txn_count', 'merchant_stats:txn_count'\]"):
        Catalog([user_stats, merchant_stats], [view])


def test_an_on_demand_output_named_like_a_feature_is_refused_when_defined() -> None:
    view = FeatureView(
        "shadowing",
        features=["user_stats:amount_mean", "user_stats:txn_count"],
        on_demand=[OnDemandTransformation("shadow", ratio, outputs=[Feature("amount_mean", "float64")], inputs=["txn_count"])],
    )
    with pytest.raises(DefinitionError, match="on-demand output 'amount_mean' clashes with 'user_stats:amount_mean'"):
        Catalog([user_stats, merchant_stats], [view])
