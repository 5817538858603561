"""The bad-input catalogue: every kind of bad input is refused with an exact error type and a message naming
the problem, and nothing stored changes (table version and every row compared before and after)."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from reliability_fixtures import day, events, frame, make_store, merchant_frame, merchant_scores, table_state, user

from feature_platform import (
    ArgumentError,
    ContractError,
    DailyPartitions,
    DefinitionError,
    Entity,
    EntityFrameError,
    Feature,
    FeatureGroup,
    FeatureReferenceError,
    FeatureStore,
    FeatureView,
    Rule,
)
from feature_platform.definitions.contract import MAX_KEY_BYTES, MAX_VALUE_BYTES
from feature_platform.quality.gate import write_validated
from feature_platform.serving.server import create_app


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input: what is called, the exact error type expected and words its message must hold."""

    name: str
    call: Callable[[FeatureStore], object]
    error: type[Exception] | int  # an exception type, or the HTTP status the server answers with
    words: tuple[str, ...]


def events_with(**columns: object) -> pd.DataFrame:
    """A valid `events` frame of day 1 (three users) with some columns replaced."""
    df = frame(day(1), 3)
    for name, values in columns.items():
        df[name] = values
    return df


def merchants_with(**columns: object) -> pd.DataFrame:
    df = merchant_frame(["m-1", "m-2", "m-3"])
    for name, values in columns.items():
        df[name] = values
    return df


def write_day1(df: object) -> Callable[[FeatureStore], object]:
    return lambda store: store.write_partition("events", day(1), df)


def ingest_events(df: object) -> Callable[[FeatureStore], object]:
    return lambda store: store.ingest("events", df)


def ingest_merchants(df: object) -> Callable[[FeatureStore], object]:
    return lambda store: store.ingest("merchant_scores", df)


def define_group(**overrides: object) -> Callable[[FeatureStore], object]:
    arguments: dict = dict(name="g", entities=[user], features=[Feature("f", "int64")])
    arguments.update(overrides)
    return lambda store: FeatureGroup(**arguments)


def store_with(tmp_root: str, groups: list, views: list, project: str = "reliability") -> Callable[[FeatureStore], object]:
    return lambda store: FeatureStore(groups=groups, views=views, offline_root=tmp_root, project=project)


TOKEN = "catalogue-token"
BODY_LIMIT = 2 * MAX_VALUE_BYTES


def http(path: str, body: object = None, *, raw: bytes | None = None, token: str | None = TOKEN) -> Callable[[FeatureStore], object]:
    """A POST to the feature server of the store (token-protected, a 2 MiB body limit)."""

    def call(store: FeatureStore) -> object:
        client = TestClient(create_app(store, token=TOKEN, max_body_bytes=BODY_LIMIT), raise_server_exceptions=False)
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        if raw is not None:
            return client.post(path, content=raw, headers=headers)
        return client.post(path, json=body, headers=headers)

    return call


def lookup(entities: object, features: object = ("txn_count",)) -> Callable[[FeatureStore], object]:
    return lambda store: store.get_online_features(entities, list(features) if isinstance(features, tuple) else features)


def lookup_request(entities: object, features: list[str] | None = None, **extra: object) -> dict:
    return {"entities": entities, "features": features or ["txn_count"], **extra}


def push_request(**columns: object) -> dict:
    rows = {"user_id": [1], "event_time": [f"{day(1)}T12:00:00"], "txn_count": [1], "amount": [1.0], "writer": ["w"]}
    return {"group": "events", "rows": {**rows, **columns}}


def entity_frame(**columns: object) -> pd.DataFrame:
    """Two entity rows (users 1 and 2) at noon of day 2, with some columns replaced or added."""
    df = pd.DataFrame({"user_id": [1, 2], "event_time": [pd.Timestamp(f"{day(2)} 12:00", tz="UTC")] * 2})
    for name, values in columns.items():
        df[name] = values
    return df


def historical(entity_df: object, features: list[str] | None = None, **options: object) -> Callable[[FeatureStore], object]:
    return lambda store: store.get_historical_features(entity_df, features or ["events:txn_count"], **options)


other_stats = FeatureGroup("other_stats", entities=[user], features=[Feature("txn_count", "int64")])
day1 = pd.Timestamp(day(1), tz="UTC")
ROOT = "/nonexistent/never-written"  # definitions are refused before any storage is touched

CATALOGUE = [
    # Frames written with ingest / write_partition
    BadInput("missing column", ingest_events(events_with().drop(columns=["amount"])), ContractError, ("'amount'", "missing column")),
    BadInput("extra column", write_day1(events_with(note="x")), ContractError, ("'note'", "unexpected column", "not declared")),
    BadInput("reserved column", write_day1(events_with(_partition=day1)), ContractError, ("'_partition'", "reserved")),
    BadInput("duplicate column", ingest_events(pd.concat([events_with(), events_with()[["amount"]]], axis=1)), ContractError, ("'amount'", "duplicate column")),
    BadInput("not a frame", ingest_events([{"user_id": 1}]), ContractError, ("expected a pandas DataFrame", "list")),
    BadInput("string in an int feature", write_day1(events_with(txn_count=["1", "2", "3"])), ContractError, ("'txn_count'", "dtype", "expected int64, got string")),
    BadInput("bool in an int feature", write_day1(events_with(txn_count=[True, False, True])), ContractError, ("'txn_count'", "expected int64, got bool")),
    BadInput("fractional float in an int feature", write_day1(events_with(txn_count=[1.5, 2.0, 3.0])), ContractError, ("'txn_count'", "non-integral")),
    BadInput("int beyond int64", write_day1(events_with(txn_count=[2**70, 1, 2])), ContractError, ("'txn_count'", "outside the 64-bit range")),
    BadInput("integers rounded by a float64 column", write_day1(events_with(txn_count=pd.Series([2**53 + 1, None, 1], dtype="float64"))), ContractError, ("'txn_count'", "2**53 or more", "Int64")),
    BadInput("mixed-type object column", write_day1(events_with(writer=["a", 1, 2.5])), ContractError, ("'writer'", "mixed types ['float', 'int', 'str']")),
    BadInput("non-UTF-8 bytes", write_day1(events_with(writer=[b"\xff\xfe", b"ok", b"ok"])), ContractError, ("'writer'", "expected string, got binary")),
    BadInput("lone surrogate in a string", write_day1(events_with(writer=["\udcff", "a", "b"])), ContractError, ("'writer'", "not valid UTF-8")),
    BadInput("huge string value", write_day1(events_with(writer=["x" * (MAX_VALUE_BYTES + 1), "a", "b"])), ContractError, ("'writer'", "value too large", str(MAX_VALUE_BYTES))),
    BadInput("huge string key", ingest_merchants(merchants_with(merchant_code=["m" * (MAX_KEY_BYTES + 1), "a", "b"])), ContractError, ("'merchant_code'", "value too large", str(MAX_KEY_BYTES))),
    BadInput("null join key", write_day1(events_with(user_id=[1, None, 3])), ContractError, ("'user_id'", "null join key", "1 row(s)")),
    BadInput("NaN join key", write_day1(events_with(user_id=[1.0, np.nan, np.nan])), ContractError, ("'user_id'", "null join key", "2 row(s)")),
    BadInput("null string key", ingest_merchants(merchants_with(merchant_code=["m-1", None, "m-3"])), ContractError, ("'merchant_code'", "null join key")),
    BadInput("wrong key dtype (strings for int64)", write_day1(events_with(user_id=["1", "2", "3"])), ContractError, ("'user_id'", "expected int64, got string")),
    BadInput("wrong key dtype (ints for string)", ingest_merchants(merchants_with(merchant_code=[1, 2, 3])), ContractError, ("'merchant_code'", "expected string, got int64")),
    BadInput("NaT event time", write_day1(events_with(event_time=[day1, pd.NaT, day1])), ContractError, ("'event_time'", "null event time")),
    BadInput("event time as text", write_day1(events_with(event_time=["2024-05-02"] * 3)), ContractError, ("'event_time'", "expected timestamp")),
    BadInput("event outside the partition", write_day1(events_with(event_time=pd.Timestamp(day(2), tz="UTC"))), ContractError, ("'event_time'", "event outside partition", "3 row(s)")),
    BadInput("time zone moves events out of the partition", write_day1(events_with(event_time=pd.Timestamp(f"{day(1)} 01:00", tz="Asia/Kolkata"))), ContractError, ("event outside partition",)),
    BadInput("duplicate (key, event time)", write_day1(pd.concat([events_with(), events_with()])), ContractError, ("duplicate rows", "3 row(s)", "['user_id', 'event_time']")),
    BadInput("duplicate (key, event time, created time)", ingest_merchants(merchant_frame(["m-1", "m-1"])), ContractError, ("duplicate rows", "['merchant_code', 'event_time', 'created_time']")),
    BadInput("malformed partition key", lambda s: s.write_partition("events", "2024/05/02", events_with()), ContractError, ("partition key", "'2024/05/02'")),
    BadInput("partition before the group's start", lambda s: s.write_partition("events", "2024-04-30", frame("2024-04-30", 3)), ContractError, ("partition key", "outside the group's partitions")),
    BadInput("missing partition key", lambda s: s.write_partition("events", None, events_with()), ContractError, ("partition key", "needs a partition key")),
    BadInput("partition key for an unpartitioned group", lambda s: s.write_partition("merchant_scores", day(1), merchants_with()), ContractError, ("not partitioned",)),
    BadInput("unknown group (write)", lambda s: s.ingest("nope", events_with()), FeatureReferenceError, ("unknown feature group 'nope'", "events")),
    # Pushes (online and offline)
    BadInput("push with a null key", lambda s: s.push("events", events_with(user_id=[1, None, 3]), to="online_and_offline"), ContractError, ("'user_id'", "null join key")),
    BadInput("push with a wrong dtype", lambda s: s.push("events", events_with(amount=["a", "b", "c"])), ContractError, ("'amount'", "expected double, got string")),
    BadInput("push to an unknown target", lambda s: s.push("events", events_with(), to="disk"), ArgumentError, ("'disk'", "'online_and_offline'")),
    BadInput("push to an unknown group", lambda s: s.push("nope", events_with()), FeatureReferenceError, ("unknown feature group 'nope'",)),
    # Online lookups
    BadInput("lookup without the key column", lookup({"customer": [1]}), EntityFrameError, ("'user_id'",)),
    BadInput("lookup with a string for an int key", lookup({"user_id": ["1"]}), EntityFrameError, ("'user_id'", "integer key", "str")),
    BadInput("lookup with a null key", lookup([{"user_id": None}]), EntityFrameError, ("'user_id'", "NoneType")),
    BadInput("lookup with a key beyond int64", lookup({"user_id": [2**64]}), EntityFrameError, ("'user_id'", "64-bit")),
    BadInput("lookup with columns of different lengths", lookup({"user_id": [1, 2], "amount": [1.0]}), EntityFrameError, ("different lengths",)),
    BadInput("lookup with entity rows that are text", lookup("user_id=1"), EntityFrameError, ("list of dicts", "str")),
    BadInput("lookup of an unknown feature", lookup({"user_id": [1]}, ("events:nope",)), FeatureReferenceError, ("has no feature 'nope'",)),
    # The HTTP feature server
    BadInput("HTTP malformed JSON", http("/get-online-features", raw=b'{"entities": '), 422, ("JSON decode error",)),
    BadInput("HTTP non-UTF-8 body", http("/get-online-features", raw=b"\xff\xfe{}"), 422, ("JSON decode error",)),
    BadInput("HTTP body that is not an object", http("/get-online-features", [1, 2]), 422, ("valid dictionary",)),
    BadInput("HTTP oversized body", http("/push", raw=b"x" * (BODY_LIMIT + 1)), 413, (f"larger than {BODY_LIMIT} bytes",)),
    BadInput("HTTP without a token", http("/push", push_request(), token=None), 401, ("bearer token",)),
    BadInput("HTTP with a wrong token", http("/push", push_request(), token="catalogue-tokem"), 401, ("bearer token",)),
    BadInput("HTTP unknown request field", http("/get-online-features", lookup_request({"user_id": [1]}, limit=5)), 422, ("Extra inputs are not permitted",)),
    BadInput("HTTP features and view both given", http("/get-online-features", lookup_request({"user_id": [1]}, feature_view="v")), 422, ("exactly one",)),
    BadInput("HTTP unknown feature", http("/get-online-features", lookup_request({"user_id": [1]}, ["events:nope"])), 400, ("has no feature 'nope'",)),
    BadInput("HTTP key of the wrong type", http("/get-online-features", lookup_request({"user_id": ["1"]})), 400, ("integer key",)),
    BadInput("HTTP key beyond int64", http("/get-online-features", lookup_request({"user_id": [10**30]})), 400, ("64-bit",)),
    BadInput("HTTP push with a null key", http("/push", push_request(user_id=[None])), 400, ("null join key",)),
    BadInput("HTTP push with a time that is not ISO 8601", http("/push", push_request(event_time=["noon"])), 400, ("'event_time'",)),
    BadInput("HTTP push with a huge string", http("/push", push_request(writer=["x" * (MAX_VALUE_BYTES + 1)])), 400, ("'writer'", "value too large")),
    BadInput("HTTP push with ragged columns", http("/push", push_request(user_id=[1, 2])), 400, ("same length",)),
    BadInput("HTTP push to an unknown group", http("/push", {"group": "nope", "rows": {}}), 400, ("unknown feature group 'nope'",)),
    # Point-in-time retrieval
    BadInput("entity frame without the key", historical(entity_frame().drop(columns=["user_id"])), EntityFrameError, ("lacks join key", "'user_id'")),
    BadInput("entity frame without the time", historical(entity_frame().drop(columns=["event_time"])), EntityFrameError, ("no time column 'event_time'",)),
    BadInput("entity frame with a NaT time", historical(entity_frame(event_time=[day1, pd.NaT])), EntityFrameError, ("'event_time'", "1 row(s) have no time")),
    BadInput("entity frame with text times", historical(entity_frame(event_time=["noon", "midnight"])), EntityFrameError, ("'event_time'", "not made of datetimes")),
    BadInput("entity frame with a null key", historical(entity_frame(user_id=pd.Series([1, None], dtype=object))), EntityFrameError, ("'user_id'", "no join key value")),
    BadInput("entity frame with strings for an int key", historical(entity_frame(user_id=["1", "2"])), EntityFrameError, ("'user_id'", "keys it as int64")),
    BadInput("entity frame with floats for an int key", historical(entity_frame(user_id=[1.0, 2.0])), EntityFrameError, ("'user_id'", "double")),
    BadInput("entity frame with a key beyond int64", historical(entity_frame(user_id=pd.Series([2**64, 1], dtype=object))), EntityFrameError, ("'user_id'", "64-bit range")),
    BadInput("entity frame with repeated columns", historical(pd.concat([entity_frame(), entity_frame()[["user_id"]]], axis=1)), EntityFrameError, ("repeated column names",)),
    BadInput("entity rows that are not a frame", historical([{"user_id": 1}]), EntityFrameError, ("must be a pandas DataFrame",)),
    BadInput("entity column clashing with an output", historical(entity_frame(txn_count=[5, 6])), EntityFrameError, ("['txn_count'] already exist",)),
    BadInput("historical unknown feature", historical(entity_frame(), ["events:nope"]), FeatureReferenceError, ("has no feature 'nope'",)),
    BadInput("historical ambiguous bare name", lambda s: FeatureStore(groups=[events, other_stats], offline_root=ROOT).get_historical_features(entity_frame(), ["txn_count"]), FeatureReferenceError, ("ambiguous", "events:txn_count")),
    BadInput("historical as_of one version number", historical(entity_frame(), as_of=1), ArgumentError, ("ambiguous across groups",)),
    BadInput("historical as_of that is not a time", historical(entity_frame(), as_of="yesterday"), ArgumentError, ("not a point in time",)),
    BadInput("entity frame with integer times", historical(entity_frame(event_time=[1714564800, 1714568400])), EntityFrameError, ("'event_time'", "numbers have no unit")),
    BadInput("ingest before the group's partitions", ingest_events(events_with(event_time=pd.Timestamp("2019-06-01", tz="UTC"))), ContractError, ("'event_time'", "event outside partitions", "declared partitions")),
    BadInput("push to offline before the group's partitions", lambda s: s.push("events", events_with(event_time=pd.Timestamp("2019-06-01", tz="UTC")), to="offline"), ContractError, ("'event_time'", "event outside partitions")),
    BadInput("read bound that is a number", lambda s: s.read_group("events", start=1714564800), ArgumentError, ("is a number, not a point in time",)),
    # Reads and feature references
    BadInput("unknown group (read)", lambda s: s.read_group("nope"), FeatureReferenceError, ("unknown feature group 'nope'",)),
    BadInput("unknown feature", lambda s: s.catalog.resolve(["events:nope"]), FeatureReferenceError, ("has no feature 'nope'",)),
    BadInput("unknown bare feature", lambda s: s.catalog.resolve(["nope"]), FeatureReferenceError, ("unknown feature 'nope'",)),
    BadInput("ambiguous bare name", lambda s: FeatureStore(groups=[events, other_stats], offline_root=ROOT).catalog.resolve(["txn_count"]), FeatureReferenceError, ("ambiguous", "events:txn_count", "other_stats:txn_count")),
    BadInput("table version that does not exist", lambda s: s.read_group("events", as_of=99), ArgumentError, ("no version 99",)),
    BadInput("time that is not a time", lambda s: s.read_group("events", start="yesterday"), ArgumentError, ("'yesterday' is not a point in time",)),
    BadInput("NaT as a time", lambda s: s.read_group("events", end=pd.NaT), ArgumentError, ("missing",)),
    # Definitions
    BadInput("group name with a path separator", define_group(name="../etc"), DefinitionError, ("feature group name '../etc' is invalid",)),
    BadInput("feature name with a space", lambda s: Feature("txn count"), DefinitionError, ("feature name 'txn count' is invalid",)),
    BadInput("project name with a path separator", store_with(ROOT, [events], [], project="a/b"), DefinitionError, ("project name 'a/b' is invalid",)),
    BadInput("negative ttl", define_group(ttl=timedelta(days=-1)), DefinitionError, ("ttl must be a positive timedelta",)),
    BadInput("unknown dtype", lambda s: Feature("f", "int"), DefinitionError, ("unknown dtype 'int'",)),
    BadInput("entity without join keys", lambda s: Entity("user", join_keys={}), DefinitionError, ("join_keys must be a non-empty mapping",)),
    BadInput("column declared twice", define_group(features=[Feature("event_time", "int64")]), DefinitionError, ("'event_time' is used twice",)),
    BadInput("partitions ending before they start", lambda s: DailyPartitions(start="2024-05-02", end="2024-05-01"), DefinitionError, ("must be after start",)),
    BadInput("group defined twice", store_with(ROOT, [events, events], []), DefinitionError, ("'events' version 1 is defined twice",)),
    BadInput("view with an unknown feature", store_with(ROOT, [events], [FeatureView("v", features=["events:nope"])]), FeatureReferenceError, ("feature view 'v'", "no feature 'nope'")),
    BadInput("view with an ambiguous bare name", store_with(ROOT, [events, other_stats], [FeatureView("v", features=["txn_count"])]), FeatureReferenceError, ("ambiguous",)),
]


@pytest.fixture
def seeded(tmp_path: Path, redis_url: str) -> FeatureStore:
    """A store holding two partitions of `events` (synced to Redis) and a few `merchant_scores` rows."""
    store = make_store(tmp_path / "offline", online_url=redis_url)
    store.write_partition("events", day(1), frame(day(1), 5, writer="seed"))
    store.write_partition("events", day(2), frame(day(2), 5, writer="seed"))
    store.ingest("merchant_scores", merchant_frame(["m-1", "m-2"]))
    store.sync_to_online("events")
    return store


def stored_state(store: FeatureStore) -> dict:
    """Version and rows of every table, and every Redis key with its value."""
    client = redis.Redis.from_url(store.online_url)
    online = sorted((key, client.dump(key)) for key in client.scan_iter())  # any type of value
    return {"online": online, **{g.name: table_state(store, g) for g in (events, merchant_scores)}}


def test_the_catalogue_covers_at_least_25_kinds_of_bad_input() -> None:
    """Proves: the catalogue is as broad as promised, with no two cases under one name."""
    names = [case.name for case in CATALOGUE]
    assert len(set(names)) == len(names) >= 25


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_changes(seeded: FeatureStore, case: BadInput) -> None:
    """Proves: this bad input raises exactly `case.error` (or the server answers that status), the message
    names the problem, and every stored table keeps its version and rows and every Redis key its value."""
    before = stored_state(seeded)

    if isinstance(case.error, int):
        response = case.call(seeded)
        assert response.status_code == case.error, response.text
        message = str(response.json()["detail"])
    else:
        with pytest.raises(case.error) as raised:
            case.call(seeded)
        assert type(raised.value) is case.error
        message = str(raised.value)
    for word in case.words:
        assert word in message, f"{word!r} not in {message!r}"
    assert stored_state(seeded) == before


def test_writing_an_empty_frame_to_a_partition_empties_that_partition_only(seeded: FeatureStore) -> None:
    """Proves the documented choice for empty frames: write_partition replaces the partition with nothing
    (a recomputation that finds no rows must remove stale ones) and leaves other partitions alone."""
    result = seeded.write_partition("events", day(1), frame(day(1), 0))

    assert result.rows == 0
    assert seeded.read_group("events", start=day(1), end=day(2)).empty
    assert len(seeded.read_group("events", start=day(2), end=day(3))) == 5


def test_ingesting_an_empty_frame_commits_nothing(seeded: FeatureStore) -> None:
    """Proves the documented choice for empty frames: ingest checks the frame's columns, then commits no
    new table version (an append of nothing is not a change)."""
    before = table_state(seeded)

    result = seeded.ingest("events", frame(day(1), 0))

    assert (result.rows, result.version) == (0, before[0])
    assert table_state(seeded) == before
    with pytest.raises(ContractError, match="missing column"):
        seeded.ingest("events", pd.DataFrame({"user_id": pd.Series([], dtype="int64")}))


guarded = replace(events, rules=(Rule.in_range("amount", min=0, max=1e12, description="Amounts are finite and not negative."),))


@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["inf", "-inf"])
def test_inf_where_a_rule_forbids_it_blocks_the_partition_and_changes_nothing(tmp_path: Path, value: float) -> None:
    """Proves: `inf` is a valid float64 for the contract, but where an ERROR rule bounds the column the quality
    gate (what feature assets commit through) blocks the partition, names the rule and the rows, and the
    table keeps its version and rows; the other partitions of the same write are committed."""
    store = FeatureStore(groups=[guarded], offline_root=tmp_path, project="reliability")
    store.apply()
    store.write_partition("events", day(1), frame(day(1), 5, writer="seed"))
    before = table_state(store, guarded)
    bad = frame(day(1), 3)
    bad.loc[1, "amount"] = value

    gated = write_validated(store.offline, guarded, pd.concat([bad, frame(day(2), 3)]), [day(1), day(2)])

    assert (gated.blocked, gated.committed) == ((day(1),), (day(2),))
    failed = gated.reports[day(1)].result("amount_in_range")
    assert (failed.passed, failed.failure_count) == (False, 1)
    assert "amount_in_range [ERROR] failed on 1 of 3 rows" in gated.reports[day(1)].summary()
    version, rows = table_state(store, guarded)
    assert version == before[0] + 1  # only day 2 was committed
    assert [r for r in rows if r[1].date().isoformat() == day(1)] == before[1]
