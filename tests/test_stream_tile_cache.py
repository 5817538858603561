"""The consumer's tile cache loads what Redis holds, byte for byte (real redis-server)."""

import time
from pathlib import Path

import msgpack
import numpy as np
import pyarrow as pa

from feature_platform.online.tile_cache import TileCache
from feature_platform.windows import hll
from feature_platform.windows.tile_bytes import FORMAT, tile_bytes
from feature_platform.windows.tiles import partial_tiles
from tests.stream_fixtures import card_windows, stream_store, tile_values, transaction


def test_loaded_tiles_are_the_stored_bytes_and_an_entity_without_tiles_loads_empty(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    group = card_windows()
    cache = TileCache(store.online, group)
    key = store.online.encode_keys(store.online.prefix(group), [[7]])[0]
    batch = partial_tiles(group, events(group, [(7, 29_000_000), (7, 29_000_001), (7, 29_000_001)]))
    first, second = tile_bytes(group).pack(batch.header, batch.codes)
    store.online.client.hset(key, mapping={b"29000000": first, b"29000001": second})

    cache.load([(7,), (8,)])

    assert cache._entities[(7,)] == (key, {29000000: first, 29000001: second})
    assert cache._entities[(8,)][1] == {}


def test_tiles_stored_as_msgpack_by_an_earlier_version_load_converted(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    group = card_windows()
    key = store.online.encode_keys(store.online.prefix(group), [[7]])[0]
    store.online.client.hset(key, b"29000000", msgpack.packb([2, 1_740_000_030_000_000, 3.0, 1.0, 2.0, [5, 1, 9, 2]]))

    loaded = TileCache(store.online, group).load([(7,)])[0][1][29000000]
    assert loaded[0] == FORMAT
    assert tile_values(group, loaded)[:5] == [2, 1_740_000_030_000_000, 3.0, 1.0, 2.0]
    assert tile_values(group, loaded)[5] == hll.codes_of(np.array([5, 9]), np.array([1, 2])).tobytes()


def test_a_batch_tile_older_than_the_windows_is_deleted_not_set_and_the_other_tiles_still_line_up(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    group = card_windows()  # 1-minute tiles, largest window 1 hour: 60 tiles are read
    cache = TileCache(store.online, group)
    minute = 60_000_000
    seven = (7,)
    cache.merge(partial_tiles(group, events(group, [(7, m) for m in range(70)] + [(8, 0)])), now_us=60 * minute)  # nothing stale yet
    now = 100 * minute  # the oldest tile a window still reads is 100 - 60 = 40

    writes = cache.merge(partial_tiles(group, events(group, [(7, 30), (7, 90), (8, 95)])), now_us=now)

    assert writes.keys == [cache._entities[seven][0], cache._entities[(8,)][0]]
    assert writes.heads[:3] == [1, 1, 40] and writes.heads[3:43] == list(range(40))
    assert writes.heads[43:] == [1, 1, 0]
    assert writes.pairs[0::2] == [b"90", b"95"]
    assert sorted(cache._entities[seven][1]) == list(range(40, 70)) + [90]


def events(group, rows: list[tuple[int, int]]) -> pa.Table:
    """Transactions of (card, minute since the epoch), 30 seconds into their minute."""
    return pa.table({
        "card_id": pa.array([card for card, _ in rows], pa.int64()),
        group.event_time: pa.array([minute * 60_000_000 + 30_000_000 for _, minute in rows], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([1.0] * len(rows)),
        "merchant_id": pa.array([3] * len(rows), pa.int64()),
    })


def test_a_consumer_adds_to_tiles_an_earlier_version_stored_and_serves_both(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    group = card_windows()
    now_us = int(time.time() * 1_000_000)
    key = store.online.encode_keys(store.online.prefix(group), [[7]])[0]
    earlier = msgpack.packb([2, now_us - 5_000_000, 10.0, 4.0, 6.0, [5, 1, 9, 2]])  # two events in the current tile
    store.online.client.hset(key, b"%d" % (now_us // 60_000_000), earlier)
    store.publish_events("card_windows", [transaction(7, 0, 3.0, merchant_id=4)])

    with store.stream_processor("card_windows") as processor:
        processor.run(until_idle=True)

    names = ["card_windows:txn_count_10m", "card_windows:amount_sum_1h", "card_windows:amount_min_1h", "card_windows:amount_max_10m"]
    online = store.get_online_features([{"card_id": 7}], names).to_dict()
    assert (online["txn_count_10m"], online["amount_sum_1h"], online["amount_min_1h"], online["amount_max_10m"]) == ([3], [13.0], [3.0], [6.0])
