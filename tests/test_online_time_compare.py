"""The non-regressing online write compares event, created and write times exactly, for every int64 microsecond.

Class 7 of issue 12: the Lua script compared times as doubles, exact only below 2**53 µs.
"""

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform.online import codec
from feature_platform.online.store import OnlineStore
from tests.online_fixtures import scores_group

GROUP = scores_group(created_time="created_at")
US = pa.timestamp("us", tz="UTC")
times = st.one_of(
    st.integers(-(2**62), 2**62),
    st.sampled_from([2**53, 2**53 + 1, -(2**53), -(2**53) - 1, 2**62 - 1, -(2**62)]).flatmap(
        lambda t: st.integers(t - 2, t + 2)
    ),
)


def row(event_us: int, created_us: int | None, written_us: int, score: int) -> pa.Table:
    """One stored-schema row of user 1 at these exact microsecond times."""
    return pa.table(
        {
            "user_id": pa.array([1], pa.int64()),
            "event_time": pa.array([event_us], pa.int64()).cast(US),
            "created_at": pa.array([created_us], pa.int64()).cast(US),
            "score": pa.array([score], pa.int64()),
            "label": pa.array(["x"]),
            "_written_at": pa.array([written_us], pa.int64()).cast(US),
        }
    )


def stored_header(online: OnlineStore) -> tuple[int, int, int]:
    key = codec.encode_keys(online.prefix(GROUP), [[1]])[0]
    return codec.decode_header(online.client.get(key))


def test_times_one_microsecond_apart_above_2_53_keep_the_newer_value(redis_url):
    online = OnlineStore(redis_url, project="cmp")
    online.write(GROUP, row(2**53 + 1, None, 10, score=1))

    online.write(GROUP, row(2**53, None, 20, score=2))

    assert stored_header(online)[0] == 2**53 + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.tuples(times, st.one_of(st.none(), times), times), second=st.tuples(times, st.one_of(st.none(), times), times))
def test_the_stored_value_is_the_greater_of_two_writes_in_either_order(redis_url, first, second):
    online = OnlineStore(redis_url, project="cmp")
    online.client.flushall()

    def key(t):
        return (t[0], codec.NO_CREATED_TIME if t[1] is None else t[1], t[2])

    online.write(GROUP, row(*first, score=1))
    online.write(GROUP, row(*second, score=2))

    assert stored_header(online) == max(key(first), key(second))
