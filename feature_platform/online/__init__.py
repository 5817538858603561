"""The online store: Redis keys and values (codec), reads, sync from the offline store, the embedded redis-server."""
