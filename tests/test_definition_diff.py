"""The plan's verdict on feature lists, for any edit: in place exactly when the new list extends the old one."""

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform import DailyPartitions, Entity, Feature, FeatureGroup
from feature_platform.definitions.changes import schema_changes
from feature_platform.definitions.records import group_record, layout_ids

user = Entity("user", join_keys={"user_id": "int64"})
NAMES = [f"f{i}" for i in range(6)]
features = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["int64", "float64", "string"])), min_size=1, max_size=5, unique_by=lambda f: f[0])


def group(spec: list[tuple[str, str]]) -> FeatureGroup:
    return FeatureGroup("g", entities=[user], features=[Feature(n, t) for n, t in spec], partitions=DailyPartitions(start="2024-01-01"))


@settings(max_examples=200, deadline=None)
@given(old=features, new=features)
def test_a_change_is_compatible_exactly_when_the_new_features_extend_the_old(old, new):
    _, appended, incompatible = schema_changes(group_record(group(old)), group_record(group(new)))
    extends = new[: len(old)] == old
    assert (not incompatible) == extends
    assert appended == ([n for n, _ in new[len(old):]] if extends else [])


@settings(max_examples=200, deadline=None)
@given(old=features, new=features)
def test_a_reader_knows_a_writers_layout_exactly_when_the_writer_is_a_prefix_of_it(old, new):
    written = layout_ids(group(old))[-1]
    assert (written in layout_ids(group(new))) == (new[: len(old)] == old)
