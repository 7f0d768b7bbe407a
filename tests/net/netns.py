"""A simulated internet in network namespaces: NATs, a firewall, coturn.

```
 cli (10.77.1.2) ── cnat (masquerade, optional firewall) ──┐
                       WAN 198.51.100.2                     │
                                                    inet (router; coturn on 100.64.0.10)
                       WAN 203.0.113.2, public .10          │
 srv (10.77.2.2) ── snat (1:1 NAT 203.0.113.10 <-> 10.77.2.2) ┘
```

Everything made here is named with a per-run prefix and torn down by ``close`` (the
fixture calls it even when a test fails): processes by PID, then namespaces, which
takes their veth links with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER_PUBLIC = "203.0.113.10"
SERVER_PRIVATE = "10.77.2.2"
CLIENT_PRIVATE = "10.77.1.2"
CLIENT_PUBLIC = "198.51.100.2"
TURN_ADDRESS = "100.64.0.10"
TURN_PORT = 3478
TURN_TLS_PORT = 443
ROLES = ("inet", "cnat", "cli", "snat", "srv")


class NamespacesRefused(RuntimeError):
    """The kernel (or the container) does not let us create network namespaces."""


def sh(*args: str, ns: str | None = None, check: bool = True, input: str | None = None) -> str:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def probe_namespaces() -> None:
    """Raise ``NamespacesRefused`` (with the kernel's words) if we cannot make one."""
    name = f"vgprobe{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode != 0:
        raise NamespacesRefused(done.stderr.strip() or "ip netns add failed")
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _prefix() -> str:
    """``vg<pid>x<random>``: unique per run, and names the process that owns it."""
    return f"vg{os.getpid()}x{secrets.token_hex(2)}"


_OWNED = re.compile(r"vg(\d+)x[0-9a-f]{4}-(?:" + "|".join(ROLES) + ")")


def remove_orphans() -> list[str]:
    """Delete namespaces left by a run that was killed before its clean-up (SIGKILL),
    i.e. ours by name whose owning process is gone; kill what still runs in them."""
    removed = []
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        match = _OWNED.fullmatch(name)
        if match is None or Path(f"/proc/{match[1]}").exists():
            continue
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        removed.append(name)
    return removed


@dataclass
class Topology:
    prefix: str = field(default_factory=_prefix)
    made: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # With a directory, the client's link is a delay line (``delayline.py``, TUN
    # devices and a forwarding process) instead of a veth pair: delay and loss.
    delay_line_dir: Path | None = None
    _delay_line: subprocess.Popen[bytes] | None = None

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def build(self) -> None:
        remove_orphans()
        for role in ROLES:
            sh("ip", "netns", "add", self.ns(role))
            self.made.append(self.ns(role))
            sh("ip", "link", "set", "lo", "up", ns=self.ns(role))
        if self.delay_line_dir is None:
            self._link("cli", "eth0", "cnat", "lan")
        else:
            self._start_delay_line(self.delay_line_dir)
        self._link("cnat", "wan", "inet", "c")
        self._link("snat", "wan", "inet", "s")
        self._link("srv", "eth0", "snat", "lan")
        self._addr("cli", "eth0", f"{CLIENT_PRIVATE}/24", via="10.77.1.1")
        self._addr("cnat", "lan", "10.77.1.1/24")
        self._addr("cnat", "wan", f"{CLIENT_PUBLIC}/24", via="198.51.100.1")
        self._addr("inet", "c", "198.51.100.1/24")
        self._addr("inet", "s", "203.0.113.1/24")
        sh("ip", "addr", "add", f"{TURN_ADDRESS}/32", "dev", "lo", ns=self.ns("inet"))
        self._addr("snat", "wan", "203.0.113.2/24", via="203.0.113.1")
        sh("ip", "addr", "add", f"{SERVER_PUBLIC}/32", "dev", "wan", ns=self.ns("snat"))
        self._addr("snat", "lan", "10.77.2.1/24")
        self._addr("srv", "eth0", f"{SERVER_PRIVATE}/24", via="10.77.2.1")
        for role in ("cnat", "inet", "snat"):
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.ns(role))
        self.nft(
            "cnat",
            """
            table ip nat {
              chain postrouting {
                type nat hook postrouting priority srcnat;
                oifname "wan" masquerade
              }
            }
            table inet filter {
              chain forward { type filter hook forward priority filter; }
            }
            """,
        )
        self.nft(
            "snat",
            f"""
            table ip nat {{
              chain prerouting {{
                type nat hook prerouting priority dstnat;
                ip daddr {SERVER_PUBLIC} dnat to {SERVER_PRIVATE}
              }}
              chain postrouting {{
                type nat hook postrouting priority srcnat;
                ip saddr {SERVER_PRIVATE} oifname "wan" snat to {SERVER_PUBLIC}
              }}
            }}
            """,
        )

    def _link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        sh("ip", "link", "add", a_if, "netns", self.ns(a), "type", "veth",
           "peer", "name", b_if, "netns", self.ns(b))  # fmt: skip
        sh("ip", "link", "set", a_if, "up", ns=self.ns(a))
        sh("ip", "link", "set", b_if, "up", ns=self.ns(b))

    def _start_delay_line(self, directory: Path) -> None:
        control = directory / "delayline.json"
        control.write_text("{}")
        ready = control.with_suffix(".ready")
        ready.unlink(missing_ok=True)
        args = [sys.executable, "-m", "tests.net.delayline", "--a", f"{self.ns('cli')}:eth0",
                "--b", f"{self.ns('cnat')}:lan", "--control", str(control)]  # fmt: skip
        self._delay_line = self.spawn("cnat", args, directory / "delayline.log", {}, cwd=REPO)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self._delay_line.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"delay line did not start: {(directory / 'delayline.log').read_text()}"
                )
            time.sleep(0.05)
        sh("ip", "link", "set", "eth0", "up", ns=self.ns("cli"))
        sh("ip", "link", "set", "lan", "up", ns=self.ns("cnat"))

    def impair(self, delay_ms: float = 0, loss: float = 0, jitter_ms: float = 0) -> None:
        """Delay (each way) and loss (percent, each way) on the client's link; needs
        the delay line (``delay_line_dir``)."""
        if self._delay_line is None or self.delay_line_dir is None:
            raise RuntimeError("impair() needs Topology(delay_line_dir=...)")
        spec = {"delay_ms": delay_ms, "loss": loss, "jitter_ms": jitter_ms}
        (self.delay_line_dir / "delayline.json").write_text(json.dumps(spec))
        os.kill(self._delay_line.pid, signal.SIGUSR1)

    def _addr(self, role: str, dev: str, cidr: str, via: str | None = None) -> None:
        sh("ip", "addr", "add", cidr, "dev", dev, ns=self.ns(role))
        if via:
            sh("ip", "route", "add", "default", "via", via, ns=self.ns(role))

    def nft(self, role: str, ruleset: str) -> None:
        sh("nft", "-f", "-", ns=self.ns(role), input=ruleset)

    def block_client_udp(self, *, allow_tcp_443: bool) -> None:
        """The client's network drops all UDP (and, optionally, all TCP but port 443)."""
        rules = ['add rule inet filter forward iifname "lan" meta l4proto udp drop']
        if allow_tcp_443:
            rules.append('add rule inet filter forward iifname "lan" tcp dport != 443 drop')
        self.nft("cnat", "\n".join(rules) + "\n")

    def block_client_media(self) -> None:
        """Everything but TCP to the server: no UDP, and the TURN server unreachable
        (the page's websocket lives on, any media path dies)."""
        self.nft(
            "cnat",
            'add rule inet filter forward iifname "lan" meta l4proto udp drop\n'
            f'add rule inet filter forward iifname "lan" ip daddr {TURN_ADDRESS} drop\n',
        )

    def unblock_client(self) -> None:
        sh("nft", "flush", "chain", "inet", "filter", "forward", ns=self.ns("cnat"))

    def spawn(
        self,
        role: str,
        args: Sequence[str],
        log: Path,
        env: dict[str, str],
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(role), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=cwd,
                start_new_session=True,
            )
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.processes:
            self.processes.remove(proc)

    def pids_in(self, role: str) -> list[int]:
        return [int(p) for p in sh("ip", "netns", "pids", self.ns(role), check=False).split()]

    def close(self) -> None:
        for proc in list(self.processes):
            self.stop(proc)
        for name in reversed(self.made):
            # Anything still running in a namespace we made (a grandchild) goes too.
            for pid in sh("ip", "netns", "pids", name, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while (
                sh("ip", "netns", "pids", name, check=False).split() and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()


def make_turn_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the TURN server's address (clients trust it via
    ``SSL_CERT_FILE``)."""
    cert, key = directory / "turn.pem", directory / "turn.key"
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", f"/CN={TURN_ADDRESS}", "-addext", f"subjectAltName=IP:{TURN_ADDRESS}",
       "-keyout", str(key), "-out", str(cert))  # fmt: skip
    return cert, key


def coturn_config(directory: Path, secret: str, cert: Path, key: Path) -> Path:
    """The deploy.md configuration, on the namespace addresses."""
    conf = directory / "turnserver.conf"
    conf.write_text(
        f"""listening-ip={TURN_ADDRESS}
relay-ip={TURN_ADDRESS}
listening-port={TURN_PORT}
tls-listening-port={TURN_TLS_PORT}
min-port=49160
max-port=49400
use-auth-secret
static-auth-secret={secret}
realm=videogate.test
cert={cert}
pkey={key}
fingerprint
no-cli
no-multicast-peers
no-software-attribute
userdb={directory / "turndb"}
pidfile={directory / "turnserver.pid"}
log-file=stdout
simple-log
"""
    )
    return conf
