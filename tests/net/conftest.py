"""Fixtures for the network-namespace tests (``world.py``, ``netns.py``).

The topology is built once per test session and always torn down (processes by PID,
then namespaces), even when a test fails. A skip happens only where the kernel
refuses namespaces, and says so.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .netns import NamespacesRefused, probe_namespaces
from .world import Enrolled, GateServers, Net, enrol_people, start_internet, tail


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    try:
        probe_namespaces()
    except NamespacesRefused as exc:
        pytest.skip(f"network namespaces refused here (the kernel, or not root): {exc}")
    workdir = tmp_path_factory.mktemp("netns")
    # SIGTERM (a CI timeout) would end the run without clean-up: make it an exception.
    previous = signal.signal(signal.SIGTERM, _terminate)
    world = start_internet(workdir)
    try:
        yield world
    finally:
        world.topo.close()
        signal.signal(signal.SIGTERM, previous)
        print(f"--- coturn log (tail) ---\n{tail(workdir / 'coturn.log')}")


@pytest.fixture(scope="session")
def enrolled(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Enrolled:
    return enrol_people(faces_dir, tmp_path_factory.mktemp("netns-data"))


@pytest.fixture(scope="session")
def servers(net: Net, enrolled: Enrolled) -> Iterator[GateServers]:
    pool = GateServers(net, enrolled)
    try:
        yield pool
    finally:
        pool.stop()
