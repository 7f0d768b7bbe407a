"""``[cluster]`` settings, and the single-node default left as it was."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from server.cluster.bridge import ClusterBridge
from server.cluster.counters import MirroredLockout
from server.config import ConfigError, load_settings
from server.devserver import REPO


def test_cluster_is_off_by_default_and_checked_when_on() -> None:
    settings = load_settings(env={})
    assert settings.cluster.redis_url == "" and settings.cluster.lease_s == 10.0
    env = {"VIDEOGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert load_settings(env=env).cluster.redis_url.startswith("redis://")
    with pytest.raises(ConfigError, match="redis_url"):
        load_settings(env={"VIDEOGATE_CLUSTER_REDIS_URL": "127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="lease_s"):
        load_settings(env={"VIDEOGATE_CLUSTER_LEASE_S": "0.5"})


def test_a_single_node_never_loads_the_redis_client() -> None:
    """Without ``redis_url`` nothing of the app imports the redis client (the hub loads
    ``server/cluster/bridge.py`` only when a cluster is configured)."""
    code = (
        "import sys\n"
        "from server.config import load_settings\n"
        "from server.app import create_app\n"
        "create_app(load_settings(env={}))\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


async def test_with_redis_unreachable_a_node_hosts_joins_and_locks_on_its_own() -> None:
    """docs/scale.md, "Redis is unreachable": nothing raises into the join path."""
    settings = load_settings(
        env={"VIDEOGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:1/0", "VIDEOGATE_SERVER_PORT": "1"}
    )
    hub = SimpleNamespace(
        settings=settings,
        rooms={},
        lockout=MirroredLockout(2, 60.0, 60.0),
        store=None,
    )
    bridge = ClusterBridge(hub)  # type: ignore[arg-type]
    try:
        assert await bridge.place("room1") is None  # hosted on the node the join reached
        keys = ("invite:tok",)
        hub.lockout.record(keys, time.monotonic())  # the gate's own count
        await bridge.sync_lockout(keys, failed=True)
        assert hub.lockout.lock_of(keys, time.monotonic()) is None
        hub.lockout.record(keys, time.monotonic())
        assert hub.lockout.lock_of(keys, time.monotonic()) is not None  # locks on its own
        assert await bridge.claim("token") is None  # no rejoin: the person verifies again
    finally:
        await bridge.node.redis.aclose()
