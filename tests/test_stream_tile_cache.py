"""The consumer's tile cache loads what Redis holds, byte for byte (real redis-server)."""

from pathlib import Path

from feature_platform.online.tile_cache import TileCache
from tests.stream_fixtures import card_windows, stream_store


def test_loaded_tiles_are_the_stored_bytes_and_an_entity_without_tiles_loads_empty(tmp_path: Path, redis_url: str) -> None:
    store = stream_store(tmp_path, redis_url)
    group = card_windows()
    cache = TileCache(store.online, group)
    key = store.online.encode_keys(store.online.prefix(group), [[7]])[0]
    stored = {b"29000000": bytes(range(256)), b"29000001": b"\x95\x00\xff" * 500}
    store.online.client.hset(key, mapping=stored)

    cache.load([(7,), (8,)])

    assert cache._entities[(7,)] == (key, {29000000: bytes(range(256)), 29000001: b"\x95\x00\xff" * 500})
    assert cache._entities[(8,)][1] == {}
