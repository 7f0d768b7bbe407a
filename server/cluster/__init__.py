"""Several nodes as one server: shared state in Redis (docs/scale.md).

Nothing here is imported on a single node's path except the interfaces: with an
empty ``[cluster] redis_url`` the hub keeps everything in memory as before.
"""

from .counters import FailureCounter, LocalCounter, MirroredLockout, RedisCounter
from .grace import GraceRecord, RedisGrace
from .registry import NodeInfo, Registry

__all__ = [
    "FailureCounter", "GraceRecord", "LocalCounter", "MirroredLockout", "NodeInfo",
    "RedisCounter", "RedisGrace", "Registry",
]  # fmt: skip
