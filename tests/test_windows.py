"""Window and tile arithmetic, the HyperLogLog, and stream group definitions: pure functions, no servers."""

from datetime import timedelta

import msgpack
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform import Aggregation, DefinitionError, StreamFeatureGroup
from feature_platform.windows import hll
from feature_platform.errors import FeaturePlatformError
from feature_platform.windows.tile_bytes import layout, tile_bytes
from feature_platform.windows.tiles import partial_tiles, window_start
from tests.stream_fixtures import card, card_windows, tile_values

MINUTE_US = 60_000_000


def test_a_window_read_mid_tile_starts_at_the_tile_a_window_length_earlier() -> None:
    at = 10 * MINUTE_US + 30_000_000  # 00:10:30
    assert window_start(at, timedelta(minutes=10), MINUTE_US) == 1 * MINUTE_US  # tiles 00:01 .. 00:10
    assert window_start(10 * MINUTE_US, timedelta(minutes=10), MINUTE_US) == 1 * MINUTE_US
    assert window_start(10 * MINUTE_US - 1, timedelta(minutes=10), MINUTE_US) == 0


def test_window_starts_before_1970_round_down_too() -> None:
    assert window_start(-1, timedelta(minutes=1), MINUTE_US) == -MINUTE_US


def test_a_tile_holds_count_last_time_then_one_value_per_field_and_measure() -> None:
    spec = layout(card_windows())
    assert spec.measures == (("sum", "amount"), ("min", "amount"), ("max", "amount"), ("hll", "merchant_id"))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=300), cut=st.integers(0, 300))
def test_registers_merged_from_two_halves_equal_registers_of_the_whole(values: list[int], cut: int) -> None:
    def registers(part: list[int]) -> np.ndarray:
        return hll.dense(hll.codes_of(*hll.registers_and_ranks(pa.array(part, pa.int64()))))

    merged = np.maximum(registers(values[:cut]), registers(values[cut:]))
    assert np.array_equal(merged, registers(values))


def tiles_of(group: StreamFeatureGroup, table: pa.Table) -> dict[tuple, bytes]:
    """Per (entity, tile) of one batch: the tile packed."""
    batch = partial_tiles(group, table)
    return dict(zip(zip(map(batch.entities.__getitem__, batch.entity_index), batch.tiles), tile_bytes(group).pack(batch.header, batch.codes)))


# Tiles with one HyperLogLog measure (the common layout), with two (codes of each measure in turn), and with none.
LAYOUTS = [
    card_windows(),
    StreamFeatureGroup("two_sketches", entities=[card], fields={"merchant_id": "int64", "units": "int64"}, aggregations=[
        Aggregation("approx_count_distinct", timedelta(hours=1), column="merchant_id"), Aggregation("sum", timedelta(hours=1), column="units"),
        Aggregation("approx_count_distinct", timedelta(hours=1), column="units"), Aggregation("min", timedelta(hours=1), column="units")]),
    StreamFeatureGroup("no_sketch", entities=[card], fields={"units": "int64"}, aggregations=[
        Aggregation("count", timedelta(hours=1)), Aggregation("max", timedelta(hours=1), column="units")]),
]


@pytest.mark.parametrize("group", LAYOUTS, ids=lambda g: g.name)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), events=st.integers(1, 3000), batches=st.integers(1, 6))
def test_partial_tiles_of_batches_merged_in_order_equal_the_tiles_of_the_whole(
    group: StreamFeatureGroup, seed: int, events: int, batches: int
) -> None:
    rng = np.random.default_rng(seed)
    table = pa.table({
        "card_id": pa.array(rng.integers(0, 3, events)),
        "event_time": pa.array(rng.integers(0, 2 * MINUTE_US, events), pa.timestamp("us", tz="UTC")),
        "amount": pa.array(rng.integers(-400, 400, events) * 0.25),
        "merchant_id": pa.array(rng.integers(0, 5_000, events)),
        "units": pa.array(rng.integers(-(2**40), 2**40, events)),
    }).select([*group.join_keys, group.event_time, *group.fields])
    cuts = sorted(rng.integers(0, events, batches - 1).tolist())
    form = tile_bytes(group)
    merged: dict[tuple, bytes] = {}
    for start, end in zip([0, *cuts], [*cuts, events]):
        batch = partial_tiles(group, table.slice(start, end - start))
        cells = [(batch.entities[e], t) for e, t in zip(batch.entity_index, batch.tiles)]
        merged |= dict(zip(cells, form.combine(group, [merged.get(c) for c in cells], batch.header, batch.codes)))
    whole = tiles_of(group, table)
    assert merged.keys() == whole.keys()
    for cell, tile in whole.items():
        ours, theirs = tile_values(group, merged[cell]), tile_values(group, tile)
        for position, (op, _) in enumerate(form.layout.measures, start=2):
            if op == "hll":
                assert np.array_equal(hll.dense(ours[position]), hll.dense(theirs[position]))
                assert len(ours[position]) <= 2 * hll.REGISTERS  # repeats are compacted before they grow past the registers
            else:
                assert ours[position] == theirs[position]  # sums exact for quarters and integers
        assert ours[:2] == theirs[:2]  # count, last time


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 10**6), last=st.integers(0, 2**62), amounts=st.lists(st.floats(-1e9, 1e9), min_size=3, max_size=3),
       pairs=st.lists(st.tuples(st.integers(0, hll.REGISTERS - 1), st.integers(1, 55)), max_size=300))
def test_a_tile_stored_as_msgpack_by_an_earlier_version_reads_and_merges_as_it_was(
    count: int, last: int, amounts: list[float], pairs: list[tuple[int, int]]
) -> None:
    group = card_windows()
    form = tile_bytes(group)
    flat = [x for pair in pairs for x in pair]
    earlier = msgpack.packb([count, last, *amounts, flat])

    tile = tile_values(group, earlier)
    upgraded = form.upgrade(earlier)

    assert tile[:5] == tile_values(group, upgraded)[:5] == [count, last, *amounts]
    expected = np.zeros(hll.REGISTERS, dtype=np.int64)
    for register, rank in pairs:
        expected[register] = max(expected[register], rank)
    assert np.array_equal(hll.dense(tile[5]), expected)
    merged = form.combine(group, [upgraded], np.frombuffer(upgraded, form.header, 1), [[upgraded[form.header.itemsize :]]])
    assert tile_values(group, merged[0])[:2] == [2 * count, last]


def test_an_integer_sum_past_int64_in_a_tile_fails_naming_the_group_and_field() -> None:
    group = StreamFeatureGroup("orders", entities=[card], fields={"units": "int64"},
                               aggregations=[Aggregation("sum", timedelta(hours=1), column="units")])
    table = pa.table({"card_id": pa.array([1]), "event_time": pa.array([0], pa.timestamp("us", tz="UTC")),
                      "units": pa.array([2**62])})
    batch = partial_tiles(group, table)
    message = "stream group 'orders': the sum of integer field 'units' in one tile passed the int64 range; declare the field float64"

    with pytest.raises(FeaturePlatformError, match=message):
        tile_bytes(group).combine(group, tile_bytes(group).pack(batch.header, batch.codes), batch.header, batch.codes)  # two batches
    with pytest.raises(FeaturePlatformError, match=message):
        partial_tiles(group, pa.concat_tables([table, table]))  # within one


@pytest.mark.parametrize("distinct", [1, 10, 1_000, 50_000])
def test_the_distinct_estimate_is_within_a_few_percent(distinct: int) -> None:
    values = pa.array([f"merchant-{i % distinct}" for i in range(distinct * 2)])
    estimate = hll.estimate(hll.dense(hll.codes_of(*hll.registers_and_ranks(values))))
    assert abs(estimate - distinct) <= max(1, 0.1 * distinct)


def test_the_features_of_a_stream_group_are_its_aggregations() -> None:
    group = card_windows()
    assert [(f.name, str(f.arrow_type)) for f in group.features] == [
        ("txn_count_10m", "int64"), ("txn_count_1h", "int64"), ("amount_sum_1h", "double"), ("amount_mean_10m", "double"),
        ("amount_min_1h", "double"), ("amount_max_10m", "double"), ("merchants_1h", "int64"),
    ]
    assert group.schema.names == ["card_id", "event_time", "event_id", "amount", "merchant_id", "_partition", "_written_at"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"aggregations": [Aggregation("count", timedelta(seconds=90))]}, "window 90s of 'event_count_90s' is not a whole number of 1m tiles"),
        ({"aggregations": [Aggregation("sum", timedelta(hours=1), column="price")]}, "reads unknown field 'price'"),
        ({"fields": {"note": "string"}, "aggregations": [Aggregation("sum", timedelta(hours=1), column="note")]}, "needs a numeric field; 'note' is string"),
        ({"aggregations": []}, "aggregations must be a non-empty list"),
        ({"fields": {"event_id": "string"}}, "clash with a key, the event time or 'event_id'"),
        ({"tile": timedelta(0)}, "tile must be a positive whole number of seconds"),
    ],
)
def test_a_bad_stream_group_definition_names_what_to_fix(options: dict, message: str) -> None:
    arguments = {"entities": [card], "fields": {"amount": "float64"}, "aggregations": [Aggregation("count", timedelta(minutes=10))], **options}
    with pytest.raises(DefinitionError, match=message):
        StreamFeatureGroup("card_windows", **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("median", timedelta(hours=1)), "aggregation function 'median' is unknown"),
        (("sum", timedelta(hours=1)), "needs the event field it reads"),
        (("count", timedelta(0)), "positive whole number of seconds"),
    ],
)
def test_a_bad_aggregation_names_what_to_fix(arguments: tuple, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        Aggregation(*arguments)


def test_the_registry_record_of_a_stream_group_rebuilds_it_and_fingerprints_its_windows() -> None:
    from feature_platform.definitions.records import group_from_record, group_record, schema_fingerprint

    group = card_windows()
    rebuilt = group_from_record(group_record(group))
    assert isinstance(rebuilt, StreamFeatureGroup)
    assert (rebuilt.aggregations, rebuilt.fields, rebuilt.tile, rebuilt.schema) == (group.aggregations, group.fields, group.tile, group.schema)
    assert schema_fingerprint(rebuilt) == schema_fingerprint(group)
    assert schema_fingerprint(card_windows(tile=timedelta(minutes=5))) != schema_fingerprint(group)
