"""The stream consumer's copy of the tiles it writes: batches merge here, so Redis only stores the results.

One process at a time writes a stream group's tiles (the lease), and each
write moves the watermark only if it is still the one this process last wrote
(`tiles.write_tiles`). So while the stored watermark is ours, the stored tiles
of a cached entity are exactly the cached ones, and a batch costs Redis one
`HSET` per touched entity instead of a read, a decode, a merge and an encode per
tile. An entity's tiles are loaded with one `HGETALL` the first time a batch
touches it; after a refused or failed write the cache is dropped and reloaded
from Redis. Tiles are kept packed (msgpack, as stored), least recently touched
entities first out past `capacity`.
"""

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgpack

from feature_platform.definitions.aggregations import StreamFeatureGroup
from feature_platform.online.store import OnlineStore
from feature_platform.online.tiles import TileWrites, write_tiles
from feature_platform.windows.tiles import TileBatch, layout, tile_micros, tiles_in


LOAD_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""


class _Entity:
    __slots__ = ("key", "tiles", "refreshed_us")

    def __init__(self, key: bytes, tiles: dict[int, bytes]) -> None:
        self.key = key
        self.tiles = tiles
        self.refreshed_us = -1  # expiry not refreshed by this process yet


class TileCache:
    """The tiles of recently touched entities of one stream group, as stored in Redis.

    >>> cache = TileCache(store.online, group)
    >>> cache.apply(partial_tiles(group, events), [], expected=None, last_id="1700000000000-0", now_us=now_us, ...)
    """

    def __init__(self, online: OnlineStore, group: StreamFeatureGroup, *, capacity: int = 200_000) -> None:
        self.online = online
        self.group = group
        self.capacity = capacity
        self._layout = layout(group)
        self._prefix = online.prefix(group)
        self._tile_us = tile_micros(group)
        self._span = tiles_in(group, group.largest_window)
        self._entities: OrderedDict[tuple[Any, ...], _Entity] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entities)

    def clear(self) -> None:
        self._entities.clear()

    def apply(
        self,
        batch: TileBatch,
        dead_letters: Sequence[Sequence[str]],
        *,
        expected: str | None,
        last_id: str,
        now_us: int,
        watermark_key: bytes,
        dead_key: str,
        lease: tuple[bytes, str, int],
    ) -> bool:
        """Merge a batch into the tiles and write them with the watermark `last_id`, if the stored one is `expected`.

        False when the stored watermark is another (nothing written; the cache is dropped).
        """
        try:
            writes = self._merge(batch, now_us)
            written = write_tiles(
                self.online, self.group, writes, dead_letters, watermark_key=watermark_key, dead_key=dead_key,
                lease=lease, expected=expected, last_id=last_id,
            )
        except BaseException:
            self.clear()
            raise
        if not written:
            self.clear()
        while len(self._entities) > self.capacity:
            self._entities.popitem(last=False)
        return written

    def _merge(self, batch: TileBatch, now_us: int) -> TileWrites:
        entities = [self._entities.get(e) for e in batch.entities]
        missing = [i for i, e in enumerate(entities) if e is None]
        if missing:
            for i, loaded in zip(missing, self._load([batch.entities[i] for i in missing])):
                entities[i] = loaded
        touched: dict[int, list[int]] = {}
        pack, unpack, merge = msgpack.packb, msgpack.unpackb, self._layout.merge
        for index, tile, *partial in zip(batch.entity_index, batch.tiles, *batch.columns):
            tiles = entities[index].tiles  # type: ignore[union-attr]
            stored = tiles.get(tile)
            tiles[tile] = pack(partial if stored is None else merge(unpack(stored), partial))
            touched.setdefault(index, []).append(tile)
        writes = TileWrites()
        oldest = now_us // self._tile_us - self._span
        for index, changed in touched.items():
            entity = entities[index]
            assert entity is not None
            self._entities[batch.entities[index]] = entity
            self._entities.move_to_end(batch.entities[index])
            refresh = now_us - entity.refreshed_us >= self._tile_us
            if refresh:
                entity.refreshed_us = now_us
            stale: list[bytes] = []
            if len(entity.tiles) > self._span + 2:  # drop the tiles no window reads any more
                stale = [b"%d" % t for t in entity.tiles if t < oldest]
                for field in stale:
                    del entity.tiles[int(field)]
            kept = [t for t in changed if t in entity.tiles]
            writes.keys.append(entity.key)
            writes.heads.append([len(kept), int(refresh), stale])
            for tile in kept:
                writes.pairs += (b"%d" % tile, entity.tiles[tile])
        return writes

    def _load(self, entities: list[tuple[Any, ...]]) -> list[_Entity]:
        """The stored tiles of entities not in the cache, in one script call (one reply, not one per entity)."""
        keys = self.online.encode_keys(self._prefix, [list(column) for column in zip(*entities)])
        replies = self.online.client.register_script(LOAD_SCRIPT)(keys=keys, args=[])
        return [_Entity(key, {int(t): v for t, v in zip(flat[0::2], flat[1::2])}) for key, flat in zip(keys, replies)]
