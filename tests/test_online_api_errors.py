"""The online Python API raises the platform's errors, never a raw library exception (issue 12 class 5).

Hypothesis throws arbitrary Python values at `get_online_features` and `push`
(real Redis, real Delta table): every call either answers, with `to_dict()` and
`to_df()` working, or raises a `FeaturePlatformError`.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform.errors import FeaturePlatformError
from tests.online_fixtures import online_store, pair_group, score_rows, scores_group

anything = st.one_of(
    st.none(), st.integers(), st.integers(2**63, 2**70), st.floats(), st.text(), st.binary(), st.booleans(),
    st.sampled_from([pd.NA, pd.NaT, np.nan, np.int64(3), np.float32(1.5), pd.Timestamp("2024-01-01"), "\ud800", b"\xff",
                     float("inf"), frozenset({1})]),
    st.builds(object), st.builds(set, st.lists(st.integers(), max_size=2)), st.builds(np.array, st.lists(st.integers(), min_size=1, max_size=2)),
    st.builds(pd.Series, st.lists(st.integers(), min_size=1, max_size=2)),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
columns = st.sampled_from(["user_id", "left", "right", "event_time", "score", "label"]) | st.text(max_size=3)
entity_rows = st.one_of(
    st.lists(st.dictionaries(columns, anything, max_size=3), max_size=3),
    st.dictionaries(columns, st.lists(anything, max_size=3) | anything, max_size=3),
    st.builds(lambda values: pd.DataFrame({"user_id": values}), st.lists(anything, max_size=3)),
    anything,
)
features = st.one_of(
    st.lists(st.sampled_from(["scores:score", "score", "label", "pairs:weight", "nope", ":", "a:b:c"]), max_size=3),
    st.sampled_from(["scores:score", "pairs:weight", "nope"]), anything, st.lists(anything, max_size=2),
)
frames = st.one_of(
    st.builds(pd.DataFrame, st.dictionaries(columns, st.lists(anything, min_size=2, max_size=2), max_size=5)),
    st.just(score_rows("2024-01-02", [1], 5)), anything,
)


@pytest.fixture
def store(tmp_path, redis_url):
    store = online_store(tmp_path, redis_url, scores_group(), pair_group())
    store.push("scores", score_rows("2024-01-01", [1, 2], 100))
    return store


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=entity_rows, wanted=features, full_feature_names=st.booleans() | anything)
def test_any_lookup_answers_or_raises_a_platform_error(store, rows, wanted, full_feature_names):
    try:
        answer = store.get_online_features(rows, wanted, full_feature_names=full_feature_names)
    except FeaturePlatformError:
        return
    answer.to_dict(include_statuses=True)
    answer.to_df()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(group=st.sampled_from(["scores", "pairs", "nope"]) | anything, frame=frames,
       to=st.sampled_from(["online", "offline", "online_and_offline"]) | anything)
def test_any_push_stores_or_raises_a_platform_error(store, group, frame, to):
    try:
        store.push(group, frame, to=to)
    except FeaturePlatformError:
        pass
