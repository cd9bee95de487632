"""Object storage: local directories and S3 behind one interface, and the one key builder.

    from ssmd.store import open_store, keys
    store = open_store(env.raw_store)          # LocalStore(path) | S3Store(bucket, ...)
    store.put_atomic(keys.raw_key(env, feed, "trade", receive_ns), data)

`ObjectStore` (base.py) is the interface; keys.py builds and parses every key.
"""

from ssmd.store.base import ObjectInfo, ObjectStore, is_temp_name, open_store

__all__ = ["ObjectInfo", "ObjectStore", "is_temp_name", "open_store"]
