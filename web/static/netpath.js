// Which network path the media took, and why none did: the lobby's connectivity
// report (docs/protocol.md, "netinfo"; docs/deploy.md). No DOM here.

// Seconds after sending the offer before the page says plainly that nothing connects.
export const CONNECT_TIMEOUT_MS = 8000;
// An admitted connection that stays "disconnected" this long is treated as a network
// change: the page rejoins (aiortc allows no ICE restart; docs/deploy.md).
export const DISCONNECTED_REJOIN_MS = 4000;

export const PATH_TEXT = {
  direct: "Connected directly to the server.",
  nat: "Connected through your router (NAT traversed).",
  relay: "Connected through a relay server (relayed).",
};

export const FAILURE_TEXT = {
  no_relay:
    "Your network blocks video calls (no UDP reaches the server) and this server has no " +
    "relay. Try another network, for example mobile data, or ask the organiser to set up " +
    "TURN on port 443.",
  relay_unreachable:
    "Your network blocks video calls, and the relay server could not be reached either. " +
    "Ask your network administrator to allow TCP port 443 to the TURN server, or try " +
    "another network.",
  checks_failed:
    "Your browser found no way to reach the video server from this network. Try another " +
    "network; if it keeps failing, tell the organiser (the server's media ports may be closed).",
};

// While connected the page re-reads the selected pair this often, besides following
// "selectedcandidatepairchange": a switch that happened while the connection was not
// "connected", or whose stats lagged the event, is shown within this time anyway.
export const PATH_REFRESH_MS = 2000;

// Candidates gathered by then go in the offer; later ones (a TURN relay over TLS, a
// slow STUN answer) follow as "candidate" messages (trickle ICE).
export const OFFER_GATHER_MS = 500;

export function waitForIce(conn) {
  if (conn.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (conn.iceGatheringState === "complete") {
        conn.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    conn.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, OFFER_GATHER_MS);
  });
}

// Remember every local candidate the browser gathers (type, address): after a
// failure they tell a relay that never answered from checks that found no path.
export function candidateLog(pc) {
  const seen = [];
  pc.addEventListener("icecandidate", (event) => {
    const c = event.candidate;
    if (c && c.candidate) {
      seen.push({ type: c.type, address: c.address, related: c.relatedAddress, protocol: c.protocol });
    }
  });
  // STUN/TURN servers that answered with an error or not at all (diagnostics).
  pc.addEventListener("icecandidateerror", (event) => {
    console.warn("ICE server error", event.url, event.errorCode, event.errorText);
  });
  return seen;
}

export function hasTurn(iceServers) {
  return (iceServers || []).some((s) =>
    [].concat(s.urls || []).some((u) => typeof u === "string" && u.startsWith("turn")));
}

export function failureCause(iceServers, gathered) {
  if (!hasTurn(iceServers)) return "no_relay";
  if (!gathered.some((c) => c.type === "relay")) return "relay_unreachable";
  return "checks_failed";
}

// The selected candidate pair from getStats(): path (direct, nat, relay), candidate
// types, protocol and the relay's protocol (udp, tcp, tls). null until one is selected.
export async function selectedPath(pc, gathered) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    stats.forEach((s) => {
      if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId) || {};
  const remote = stats.get(pair.remoteCandidateId) || {};
  const types = [local.candidateType, remote.candidateType];
  // Behind a NAT when STUN saw another address than the host's: a host pair is then
  // translated on the way, i.e. NAT-traversed.
  // (With mDNS-hidden host addresses the srflx's related address is 0.0.0.0: still NAT
  // or at least not comparable; a host with a public address has srflx == related.)
  const behindNat = gathered.some((c) => c.type === "srflx" && c.related !== c.address);
  let path = "direct";
  if (types.includes("relay")) path = "relay";
  else if (types.includes("srflx") || types.includes("prflx") || behindNat) path = "nat";
  const info = { path, local: local.candidateType || null, remote: remote.candidateType || null };
  if (local.protocol === "udp" || local.protocol === "tcp") info.protocol = local.protocol;
  if (local.candidateType === "relay" && ["udp", "tcp", "tls"].includes(local.relayProtocol)) {
    info.relay_protocol = local.relayProtocol;
  }
  return info;
}
