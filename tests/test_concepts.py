"""Definitions are validated where they are written, with errors that name the problem."""

from datetime import timedelta

import pyarrow as pa
import pytest

from feature_platform import DailyPartitions, DefinitionError, Entity, Feature, FeatureGroup, FeatureView
from feature_platform.definitions.references import Catalog
from feature_platform.errors import FeatureReferenceError

user = Entity("user", join_keys={"user_id": "int64"})
merchant = Entity("merchant", join_keys={"merchant_id": "int64", "country": "string"})


def group(name: str = "g", **kwargs: object) -> FeatureGroup:
    args: dict = {"entities": [user], "features": [Feature("x", "float64")]}
    args.update(kwargs)
    return FeatureGroup(name, **args)


def test_group_schema_orders_keys_times_features_then_internal_columns() -> None:
    g = group(entities=[user, merchant], created_time="created", features=[Feature("x", "int64"), Feature("y", "string")])
    assert g.schema.names == ["user_id", "merchant_id", "country", "event_time", "created", "x", "y", "_partition", "_written_at"]
    assert g.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert g.join_keys == ["user_id", "merchant_id", "country"]


@pytest.mark.parametrize("name", ["has space", "a/b", "../x", "", "1starts_with_digit", "_private", "x" * 129])
def test_invalid_group_names_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match="feature group name"):
        group(name)


def test_feature_names_must_be_unique_within_a_group() -> None:
    with pytest.raises(DefinitionError, match="column name 'x' is used twice"):
        group(features=[Feature("x"), Feature("x")])


def test_feature_may_not_reuse_a_join_key_name() -> None:
    with pytest.raises(DefinitionError, match="'user_id' is used twice"):
        group(features=[Feature("user_id", "int64")])


def test_unknown_dtype_is_refused_naming_the_feature() -> None:
    with pytest.raises(DefinitionError, match="feature 'x': unknown dtype 'decimal'"):
        Feature("x", "decimal")


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(DefinitionError, match="ttl must be a positive timedelta"):
        group(ttl=timedelta(hours=-1))


def test_entity_needs_typed_join_keys() -> None:
    with pytest.raises(DefinitionError, match="join_keys must be a non-empty mapping"):
        Entity("user", join_keys=["user_id"])  # type: ignore[arg-type]


def test_daily_partition_window_is_one_utc_day() -> None:
    start, end = DailyPartitions.window("2024-05-03")
    assert (start.isoformat(), end.isoformat()) == ("2024-05-03T00:00:00+00:00", "2024-05-04T00:00:00+00:00")
    with pytest.raises(DefinitionError, match="is not a day"):
        DailyPartitions.window("2024-13-01")


def test_registry_resolves_bare_names_when_exactly_one_group_has_them() -> None:
    a = group("a", features=[Feature("x"), Feature("only_a")])
    b = group("b", features=[Feature("x")])
    catalog = Catalog([a, b])
    resolved = catalog.resolve(["only_a", "b:x"])
    assert [(s.group.name, s.features) for s in resolved.selections] == [("a", ("only_a",)), ("b", ("x",))]


def test_ambiguous_bare_name_names_the_candidates() -> None:
    catalog = Catalog([group("a"), group("b")])
    with pytest.raises(FeatureReferenceError, match=r"'x' is ambiguous; it is in groups \['a', 'b'\]"):
        catalog.resolve(["x"])


def test_output_name_collision_needs_full_feature_names() -> None:
    catalog = Catalog([group("a"), group("b")])
    with pytest.raises(FeatureReferenceError, match="full_feature_names=True"):
        catalog.resolve(["a:x", "b:x"])
    assert catalog.resolve(["a:x", "b:x"], True).output_names == ["a__x", "b__x"]


def test_view_with_an_unknown_reference_is_refused_when_registered() -> None:
    with pytest.raises(FeatureReferenceError, match="feature group 'g' has no feature 'nope'"):
        Catalog([group()], [FeatureView("v", features=["g:nope"])])
