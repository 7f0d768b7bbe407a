"""A userspace netem: delay and loss between two namespaces, over a pair of TUN devices.

Why: the kernels these tests run on have no ``tc`` qdiscs (``tc qdisc ... netem``
fails with "Specified qdisc kind is unknown"), but TUN works. This process creates a
TUN device in each of two namespaces and forwards IP packets between them, each one
after ``delay_ms`` (plus up to ``jitter_ms``), dropping ``loss`` percent. The
impairment is re-read from ``--control`` (JSON) on SIGUSR1. The devices disappear
with the process, so stopping it by PID is the whole clean-up.

    ip netns exec NS python -m tests.net.delayline --a NS_A:IFNAME --b NS_B:IFNAME --control FILE
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import json
import os
import random
import signal
import struct
from pathlib import Path

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MTU = 2048


def open_tun_in(namespace: str, name: str) -> int:
    """A TUN device ``name`` inside ``namespace`` (this thread enters it to create it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ns_fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(ns_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    finally:
        os.close(ns_fd)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Impairment:
    def __init__(self, control: Path) -> None:
        self.control = control
        self.delay_s = self.jitter_s = self.loss = 0.0
        self.reload()

    def reload(self) -> None:
        spec = json.loads(self.control.read_text()) if self.control.exists() else {}
        self.delay_s = float(spec.get("delay_ms", 0)) / 1000
        self.jitter_s = float(spec.get("jitter_ms", 0)) / 1000
        self.loss = float(spec.get("loss", 0)) / 100


async def run(a: int, b: int, impairment: Impairment, ready: Path) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, impairment.reload)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # Packets keep their order: each leaves no earlier than the one before it.
    last_due = {a: 0.0, b: 0.0}

    def deliver(dst: int, packet: bytes) -> None:
        try:
            os.write(dst, packet)
        except OSError:
            pass  # device going down, or full: a lost packet

    def forward(src: int, dst: int) -> None:
        while True:
            try:
                packet = os.read(src, MTU)
            except BlockingIOError:
                return
            if impairment.loss and random.random() < impairment.loss:
                continue
            delay = impairment.delay_s + random.random() * impairment.jitter_s
            if delay <= 0:
                deliver(dst, packet)
                continue
            due = max(loop.time() + delay, last_due[dst])
            last_due[dst] = due
            loop.call_at(due, deliver, dst, packet)

    loop.add_reader(a, forward, a, b)
    loop.add_reader(b, forward, b, a)
    ready.write_text("ready")
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", required=True, help="NAMESPACE:IFNAME")
    parser.add_argument("--b", required=True, help="NAMESPACE:IFNAME")
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    a = open_tun_in(*args.a.split(":", 1))
    b = open_tun_in(*args.b.split(":", 1))
    ready = args.control.with_suffix(".ready")
    asyncio.run(run(a, b, Impairment(args.control), ready))


if __name__ == "__main__":
    main()
