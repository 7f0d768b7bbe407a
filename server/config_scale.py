"""[store] and [cluster]: the settings of running beyond one process (docs/scale.md).

Apart from ``config.py`` only to keep each module short; ``config`` loads and
validates them with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreSettings:
    """[store]: where what must last is kept (docs/scale.md, "Store").

    ``url`` empty: the embedded SQLite file in the data dir. ``postgresql://...``:
    a PostgreSQL database that several nodes can share; ``pool_size`` connections
    per process."""

    url: str = ""
    pool_size: int = 8


@dataclass(frozen=True)
class ClusterSettings:
    """[cluster]: several nodes sharing state through Redis (docs/scale.md). Empty
    ``redis_url``: one process, everything in memory, exactly as before."""

    # e.g. "redis://127.0.0.1:6379/0"; empty = no cluster.
    redis_url: str = ""
    # This node's name in the registry; empty = "<hostname>-<port>".
    node_id: str = ""
    # How browsers and other nodes reach this node (redirects go there); empty =
    # the server's base URL (public_url, else http(s)://host:port).
    advertise_url: str = ""
    # A node's and a room's lease: a node silent this long is dead and its rooms are
    # placed again. The heartbeat renews both every lease_s / 3.
    lease_s: float = 10.0


def scale_problem(store: StoreSettings, cluster: ClusterSettings) -> str | None:
    """What is wrong with these settings, in words for the operator (None: nothing)."""
    if store.url and not store.url.startswith(("postgresql://", "postgres://")):
        return "[store] url must be empty (SQLite in data_dir) or postgresql://..."
    if not 1 <= store.pool_size <= 100:
        return "[store] pool_size must be in [1, 100]"
    if cluster.redis_url and not cluster.redis_url.startswith(("redis://", "rediss://", "unix://")):
        return "[cluster] redis_url must start with redis://, rediss:// or unix://"
    if cluster.lease_s < 1:
        return "[cluster] lease_s must be at least 1"
    return None
