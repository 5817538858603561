"""On-demand transformations: every mode gives the same inputs, values and dtypes offline and online.

Offline is `get_historical_features` on real Delta tables; online is
`get_online_features` on a real Redis after `sync_to_online`.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform import (
    DefinitionError,
    EntityFrameError,
    Entity,
    Feature,
    FeatureGroup,
    FeaturePlatformError,
    FeatureStore,
    FeatureView,
    OnDemandTransformation,
)
from feature_platform.definitions.on_demand import Column, OnDemandPlan

user = Entity("user", join_keys={"user_id": "int64"})
metrics = FeatureGroup(
    "metrics",
    entities=[user],
    features=[Feature("n", "int64"), Feature("x", "float64"), Feature("flag", "bool"), Feature("label", "string")],
    partitions=None,
)
FEATURES = ["metrics:n", "metrics:x", "metrics:flag", "metrics:label"]
OUTPUTS = [Feature("n_big", "bool"), Feature("scaled", "float64"), Feature("n_plus", "int64"), Feature("tag", "string")]
SEEN: dict[str, list] = {}


def derive_pandas(df: pd.DataFrame) -> pd.DataFrame:
    SEEN.setdefault("pandas", []).append({c: str(df[c].dtype) for c in df.columns})
    return pd.DataFrame(
        {"n_big": df["n"] > 5, "scaled": df["x"] * df["amount"], "n_plus": df["n"] + 1, "tag": df["label"].str.upper()}
    )


def derive_python(columns: dict) -> dict:
    SEEN.setdefault("python", []).append({c: [type(v).__name__ for v in values] for c, values in columns.items()})
    return {
        "n_big": [None if n is None else n > 5 for n in columns["n"]],
        "scaled": [None if x is None or a is None else x * a for x, a in zip(columns["x"], columns["amount"])],
        "n_plus": [None if n is None else n + 1 for n in columns["n"]],
        "tag": [None if s is None else s.upper() for s in columns["label"]],
    }


def derive_row(row: dict) -> dict:
    SEEN.setdefault("row", []).append({c: type(v).__name__ for c, v in row.items()})
    n, x, a, s = row["n"], row["x"], row["amount"], row["label"]
    return {
        "n_big": None if n is None else n > 5,
        "scaled": None if x is None or a is None else x * a,
        "n_plus": None if n is None else n + 1,
        "tag": None if s is None else s.upper(),
    }


FUNCTIONS = {"pandas": derive_pandas, "python": derive_python, "row": derive_row}


def view_for(mode: str, *, amount: "str | Feature" = Feature("amount", "float64")) -> FeatureView:
    transformation = OnDemandTransformation(
        "derive", FUNCTIONS[mode], outputs=OUTPUTS, inputs=["n", "x", "label"], request_inputs=[amount], mode=mode
    )
    return FeatureView(f"derived_{mode}", features=FEATURES, on_demand=[transformation])


def store_at(root: Path, redis_url: str, *views: FeatureView, project: str = "test") -> FeatureStore:
    store = FeatureStore(groups=[metrics], views=list(views), offline_root=root / "offline", online_url=redis_url, project=project)
    store.apply()
    return store


def both_paths(store: FeatureStore, view: str, rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Historical at now and online for the same entity rows; the output columns of each."""
    outputs = [o.name for o in OUTPUTS]
    entity_df = pd.DataFrame(rows).assign(event_time=pd.Timestamp.now(tz="UTC"))
    offline = store.get_historical_features(entity_df, view)[outputs]
    online = store.get_online_features(rows, view).to_df()[outputs]
    return offline.reset_index(drop=True), online


def frame(values: list[tuple]) -> pd.DataFrame:
    """Rows of `metrics` (user_id, n, x, flag, label) with None for missing, at one time."""
    data = pd.DataFrame(values, columns=["user_id", "n", "x", "flag", "label"])
    return data.assign(
        event_time=pd.Timestamp("2024-01-01", tz="UTC"),
        n=pd.array(data["n"], dtype="Int64"),
        x=pd.array(data["x"], dtype="Float64"),
        flag=pd.array(data["flag"], dtype="boolean"),
    )


@pytest.mark.parametrize("mode", ["pandas", "python", "row"])
def test_missing_int_gives_missing_comparison_offline_and_online(tmp_path, redis_url, mode):
    store = store_at(tmp_path, redis_url, view_for(mode))
    store.ingest("metrics", frame([(1, 7, 1.5, True, "a"), (2, None, None, None, None)]))
    store.sync_to_online("metrics")

    offline, online = both_paths(store, f"derived_{mode}", [{"user_id": 1, "amount": 2.0}, {"user_id": 2, "amount": 2.0}])

    pd.testing.assert_frame_equal(offline, online)
    assert online["n_big"].tolist() == [True, pd.NA]
    assert online["scaled"].tolist()[0] == 3.0 and np.isnan(online["scaled"].tolist()[1])
    assert online["n_plus"].tolist() == [8, pd.NA]
    assert str(online["n_big"].dtype) == "boolean" and str(online["n_plus"].dtype) == "Int64"


def test_pandas_mode_sees_nullable_dtypes_on_both_paths(tmp_path, redis_url):
    store = store_at(tmp_path, redis_url, view_for("pandas"))
    store.ingest("metrics", frame([(1, 7, 1.5, True, "a"), (2, None, None, None, None)]))
    store.sync_to_online("metrics")
    SEEN.clear()

    both_paths(store, "derived_pandas", [{"user_id": 1, "amount": 2}])

    offline_seen, online_seen = SEEN["pandas"]
    assert offline_seen == online_seen == {"n": "Int64", "x": "float64", "label": "object", "amount": "float64"}


def test_online_statuses_of_a_missing_output_come_from_its_inputs(tmp_path, redis_url):
    store = store_at(tmp_path, redis_url, view_for("python"))
    store.ingest("metrics", frame([(1, None, 1.5, True, "a")]))
    store.sync_to_online("metrics")

    result = store.get_online_features([{"user_id": 1, "amount": 2.0}, {"user_id": 9, "amount": 2.0}], "derived_python")

    assert result.statuses["n_plus"] == ["PRESENT", "NOT_FOUND"]
    assert result.to_dict()["n_plus"] == [None, None]
    assert result.to_dict()["scaled"] == [3.0, None]


def test_a_declared_request_type_converts_request_values_alike(tmp_path, redis_url):
    store = store_at(tmp_path, redis_url, view_for("row"))
    store.ingest("metrics", frame([(1, 7, 1.5, True, "a")]))
    store.sync_to_online("metrics")
    SEEN.clear()

    offline, online = both_paths(store, "derived_row", [{"user_id": 1, "amount": 2}])

    assert [call["amount"] for call in SEEN["row"]] == ["float", "float"]
    assert offline["scaled"].tolist() == online["scaled"].tolist() == [3.0]


def test_a_request_value_that_does_not_convert_is_refused_on_both_paths(tmp_path, redis_url):
    store = store_at(tmp_path, redis_url, view_for("python"))
    store.ingest("metrics", frame([(1, 7, 1.5, True, "a")]))
    store.sync_to_online("metrics")
    message = r"request input 'amount' does not convert to the declared double"
    with pytest.raises(EntityFrameError, match=message):
        store.get_online_features([{"user_id": 1, "amount": "a lot"}], "derived_python")
    with pytest.raises(EntityFrameError, match=message):
        store.get_historical_features(pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp.now(tz="UTC")], "amount": ["a lot"]}), "derived_python")


def test_an_output_of_the_wrong_type_names_the_output(tmp_path, redis_url):
    wrong = OnDemandTransformation(
        "wrong", lambda columns: {"ratio": ["high" for _ in columns["x"]]}, outputs=[Feature("ratio", "float64")], inputs=["x"], mode="python"
    )
    store = store_at(tmp_path, redis_url, FeatureView("wrong_view", features=FEATURES, on_demand=[wrong]))
    store.ingest("metrics", frame([(1, 7, 1.5, True, "a")]))
    store.sync_to_online("metrics")
    message = r"on-demand transformation 'wrong': output 'ratio' does not fit its declared type double"
    with pytest.raises(FeaturePlatformError, match=message):
        store.get_online_features([{"user_id": 1}], "wrong_view")
    with pytest.raises(FeaturePlatformError, match=message):
        store.get_historical_features(pd.DataFrame({"user_id": [1], "event_time": [pd.Timestamp.now(tz="UTC")]}), "wrong_view")


def test_a_row_transformation_returning_a_list_is_refused():
    transformation = OnDemandTransformation("bad", lambda row: [1.0], outputs=[Feature("y", "float64")], inputs=["x"], mode="row")
    with pytest.raises(FeaturePlatformError, match=r"'bad' \(mode 'row'\) returned list, not a dict per row"):
        OnDemandPlan([transformation]).run({"x": Column(pa.float64(), values=[1.0])}, {}, 1)


def test_unknown_mode_is_a_definition_error():
    with pytest.raises(DefinitionError, match=r"mode 'numpy' is not one of \['pandas', 'python', 'row'\]"):
        OnDemandTransformation("t", lambda row: row, outputs=[Feature("y")], mode="numpy")


def test_an_input_that_is_no_feature_of_the_view_is_refused_when_the_view_is_registered():
    transformation = OnDemandTransformation("t", derive_row, outputs=[Feature("y")], inputs=["missing_feature"], mode="row")
    with pytest.raises(DefinitionError, match=r"view 'v': on-demand transformation 't' takes input\(s\) \['missing_feature'\]"):
        FeatureStore(groups=[metrics], views=[FeatureView("v", features=FEATURES, on_demand=[transformation])])


def test_the_demo_transformation_gives_the_same_values_offline_and_online(tmp_path, redis_url):
    from assets.fraud import amount_vs_history, fraud_detection

    transformation = fraud_detection.on_demand[0]
    assert transformation.mode == "python" and transformation.function is amount_vs_history
    result = amount_vs_history({"amount": [50.0, 10.0, None], "amount_mean_30d": [25.0, None, 5.0], "merchant_amount_mean_7d": [10.0, 0.0, 1.0]})
    assert result == {"amount_to_user_mean_30d": [2.0, None, None], "amount_to_merchant_mean_7d": [5.0, None, None]}


ints = st.one_of(st.none(), st.integers(-(2**62), 2**62))
floats = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
texts = st.one_of(st.none(), st.text(alphabet="abcXYZ", max_size=4))
rows_strategy = st.lists(st.tuples(ints, floats, st.one_of(st.none(), st.booleans()), texts), min_size=1, max_size=6)
amounts = st.lists(st.one_of(st.none(), st.floats(-100, 100, allow_nan=False), st.integers(-100, 100)), min_size=7, max_size=7)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=rows_strategy, requested=amounts, mode=st.sampled_from(["pandas", "python", "row"]))
def test_random_frames_with_missing_values_give_identical_outputs_and_dtypes(redis_url, values, requested, mode):
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    with tempfile.TemporaryDirectory() as folder:
        store = store_at(Path(folder), redis_url, view_for(mode))
        store.ingest("metrics", frame([(i + 1, *row) for i, row in enumerate(values)]))
        store.sync_to_online("metrics")
        SEEN.clear()
        # Every stored user, plus one never written; request amounts of either type or missing.
        rows = [{"user_id": u, "amount": a} for u, a in zip(range(1, len(values) + 2), requested)]

        offline, online = both_paths(store, f"derived_{mode}", rows)

    pd.testing.assert_frame_equal(offline, online)
    calls = SEEN[mode]  # what the function was given: offline first, then online (one entry per row in row mode)
    assert calls[: len(calls) // 2] == calls[len(calls) // 2 :]
