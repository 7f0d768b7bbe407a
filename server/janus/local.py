"""A throwaway Janus for tests, benchmarks and local trials: a generated configuration
in a temp dir, only the VideoRoom plugin and the HTTP transport, HTTP on loopback on a
free port, stopped by pid.

Janus never offers loopback ICE candidates (``src/ice.c`` skips loopback interfaces),
so media goes over the host's first non-loopback IPv4 address (``ice_enforce_list``):
traffic to one's own address stays inside the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

JANUS_BIN = "/usr/bin/janus"
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


@dataclass(frozen=True)
class LocalJanus:
    url: str  # HTTP API base, e.g. http://127.0.0.1:PORT/janus
    admin_key: str  # the VideoRoom plugin's admin_key
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def media_address() -> str | None:
    """The first non-loopback IPv4 address of this host (what Janus will offer)."""
    with contextlib.suppress(OSError):
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "up"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] != "lo":
                return parts[3].split("/")[0]
    return None


def write_config(folder: Path, http_port: int, admin_key: str) -> Path:
    for kind, libs in (("plugins", ["libjanus_videoroom.so"]), ("transports", ["libjanus_http.so"]),
                       ("events", []), ("loggers", [])):  # fmt: skip
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for lib in libs:
            link = folder / kind / lib
            if not link.exists():
                link.symlink_to(JANUS_LIB / kind / lib)
    address = media_address()
    enforce = f'\tice_enforce_list = "{address}"\n' if address else ""
    (folder / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{folder}"\n'
        f'\tplugins_folder = "{folder}/plugins"\n'
        f'\ttransports_folder = "{folder}/transports"\n'
        f'\tevents_folder = "{folder}/events"\n'
        f'\tloggers_folder = "{folder}/loggers"\n'
        "\tdebug_level = 4\n"
        f'\tadmin_secret = "{secrets.token_hex(16)}"\n'
        '\tserver_name = "videogate-local"\n'
        "}\n"
        'media: {\n\trtp_port_range = "40000-60000"\n}\n'
        "nat: {\n\tnice_debug = false\n\tfull_trickle = false\n" + enforce + "}\n"
        "plugins: {\n}\ntransports: {\n}\nloggers: {\n}\nevents: {\n}\n"
    )
    (folder / "janus.transport.http.jcfg").write_text(
        'general: {\n\tjson = "compact"\n\tbase_path = "/janus"\n\thttp = true\n'
        f'\tport = {http_port}\n\tip = "127.0.0.1"\n\thttps = false\n}}\n'
        "admin: {\n\tadmin_http = false\n\tadmin_https = false\n}\n"
        "cors: {\n}\n"
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f'general: {{\n\tadmin_key = "{admin_key}"\n\tlock_rtp_forward = true\n}}\n'
    )
    return folder / "janus.jcfg"


def _die_with_parent() -> None:
    """In the child before exec: a killed test or bench run takes its Janus along
    (Linux PR_SET_PDEATHSIG), not only one that reaches its ``finally``."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(url: str, pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url + "/info", timeout=1) as resp:
                if resp.status == 200:
                    return
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            raise RuntimeError("janus exited during start-up")
        time.sleep(0.1)
    raise RuntimeError("janus did not answer in time")


def stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextlib.contextmanager
def local_janus(folder: Path, *, timeout_s: float = 15.0) -> Iterator[LocalJanus]:
    """Start Janus in ``folder`` and always stop it (by pid) when the block ends."""
    port = free_port()
    admin_key = secrets.token_hex(12)
    config = write_config(folder, port, admin_key)
    log = folder / "janus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [JANUS_BIN, "-C", str(config), "-F", str(folder), "--disable-colors"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/janus"
    try:
        _wait_ready(url, proc.pid, timeout_s)
        yield LocalJanus(url, admin_key, proc.pid, log)
    finally:
        stop(proc.pid)
