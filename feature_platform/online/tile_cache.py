"""The stream consumer's copy of the tiles it writes: batches merge here, so Redis only stores the results.

One process at a time writes a stream group's tiles (the lease), and each
write moves the watermark only if it is still the one this process last wrote
(`tiles.write_tiles`). So while the stored watermark is ours, the stored tiles
of a cached entity are exactly the cached ones, and a batch costs Redis one
`HSET` per touched entity instead of a read, a decode, a merge and an encode per
tile. An entity's tiles are loaded with one `HGETALL` the first time a batch
touches it; after a refused or failed write the cache is dropped and reloaded
from Redis. Tiles are kept packed (msgpack, as stored); past `capacity`
entities, the longest cached go first.
"""

from itertools import islice
from typing import Any

import msgpack

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.online.store import OnlineStore
from feature_platform.online.tiles import TileWrites
from feature_platform.windows.tiles import TileBatch, layout, tile_micros, tiles_in


LOAD_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""


class TileCache:
    """The tiles of recently touched entities of one stream group, as stored in Redis.

    Per entity its Redis key and `{tile index: packed tile}`: tuples, bytes and
    ints only, which Python's garbage collector leaves alone however many there are.

    >>> cache = TileCache(store.online, group)
    >>> writes = cache.merge(partial_tiles(group, events), now_us)
    """

    def __init__(self, online: OnlineStore, group: StreamFeatureGroup, *, capacity: int = 200_000) -> None:
        self.online = online
        self.group = group
        self.capacity = capacity
        self._layout = layout(group)
        self._prefix = online.prefix(group)
        self._tile_us = tile_micros(group)
        self._span = tiles_in(group, group.largest_window)
        self._entities: dict[tuple[Any, ...], tuple[bytes, dict[int, bytes]]] = {}
        self._refreshed: dict[tuple[Any, ...], int] = {}  # when this process last refreshed an entity's expiry
        self._packer = msgpack.Packer()

    def clear(self) -> None:
        self._entities.clear()
        self._refreshed.clear()

    def merge(self, batch: TileBatch, now_us: int) -> TileWrites:
        """Merge a batch into the cached tiles; returns the writes that store the results (`tiles.write_tiles`).

        The caller drops the cache (`clear`) when those writes fail or are refused. Past `capacity` the longest
        cached entities go, except this batch's: while its write is in flight, they must not be loaded again.
        """
        try:
            writes = self._merge(batch, now_us)
        except BaseException:
            self.clear()
            raise
        excess = len(self._entities) - self.capacity
        if excess > 0:
            touched = set(batch.entities)
            for entity in list(islice((e for e in self._entities if e not in touched), excess)):
                del self._entities[entity]
                self._refreshed.pop(entity, None)
        return writes

    def _merge(self, batch: TileBatch, now_us: int) -> TileWrites:
        cached = self._entities
        entities = [cached.get(e) for e in batch.entities]
        missing = [i for i, e in enumerate(entities) if e is None]
        if missing:
            for i, loaded in zip(missing, self._load([batch.entities[i] for i in missing])):
                entities[i] = cached[batch.entities[i]] = loaded
        touched: dict[int, list[int]] = {}
        pack, unpack, merge = self._packer.pack, msgpack.unpackb, self._layout.merge
        for index, tile, *partial in zip(batch.entity_index, batch.tiles, *batch.columns):
            tiles = entities[index][1]  # type: ignore[index]
            stored = tiles.get(tile)
            tiles[tile] = pack(partial if stored is None else merge(unpack(stored), partial))
            if index in touched:
                touched[index].append(tile)
            else:
                touched[index] = [tile]
        writes = TileWrites()
        oldest = now_us // self._tile_us - self._span
        refreshed, every = self._refreshed, self._tile_us
        for index, changed in touched.items():
            entity = batch.entities[index]
            key, tiles = entities[index]  # type: ignore[misc]
            refresh = now_us - refreshed.get(entity, -every) >= every
            if refresh:
                refreshed[entity] = now_us
            stale = [t for t in tiles if t < oldest] if len(tiles) > self._span + 2 else []
            for tile in stale:  # tiles no window reads any more
                del tiles[tile]
            if stale:
                changed = [t for t in changed if t in tiles]
            writes.keys.append(key)
            writes.heads += (len(changed), int(refresh), len(stale), *stale)
            for tile in changed:
                writes.pairs += (b"%d" % tile, tiles[tile])
        return writes

    def _load(self, entities: list[tuple[Any, ...]]) -> list[tuple[bytes, dict[int, bytes]]]:
        """The stored tiles of entities not in the cache, in one script call (one reply, not one per entity)."""
        keys = self.online.encode_keys(self._prefix, [list(column) for column in zip(*entities)])
        replies = self.online.client.register_script(LOAD_SCRIPT)(keys=keys, args=[])
        return [(key, {int(t): v for t, v in zip(flat[0::2], flat[1::2])}) for key, flat in zip(keys, replies)]
