// videogate participant client: lobby (camera, prompts, verdict) then the room grid.
// Protocol: docs/protocol.md. No build step; an ES module served as is.

import {
  CONNECT_TIMEOUT_MS, DISCONNECTED_REJOIN_MS, FAILURE_TEXT, PATH_TEXT,
  candidateLog, failureCause, selectedPath,
} from "./netpath.js";
import { runFlash, stopFlash } from "./flash.js";
import { joinJanus, janusTracks, leaveJanus } from "./janus-client.js";

const app = document.getElementById("app");
const roomSlug = app.dataset.room;
const params = new URLSearchParams(location.search);
const invite = params.get("invite");
const $ = (id) => document.getElementById(id);

const REJOIN_KEY = `videogate.rejoin.${roomSlug}`;
let ws = null;
let pc = null;
let localStream = null;
let admitted = false;
let leaving = false;
let peers = [];
const streamsByMid = new Map();
// Reconnecting after a blip: bounded, with backoff, inside the server's grace window.
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000];
let reconnects = 0;
// Connectivity (netpath.js): ICE servers of this join, gathered candidates, timers.
let iceServers = [];
let gathered = [];
let connectTimer = null;
let disconnectTimer = null;
let offerSentAt = 0;
let pathReported = null;
let reloadOnStart = false;

function setStatus(text) { $("status").textContent = text; }

function showVerdict(ok, title, reason, next) {
  const box = $("verdict");
  box.hidden = false;
  box.classList.toggle("ok", ok);
  $("verdict-title").textContent = title;
  $("verdict-reason").textContent = reason;
  $("verdict-next").textContent = next;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

async function openCamera() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (err) {
    // No microphone is not a reason to refuse entry: carry on with video only.
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  }
}

// Candidates gathered by then go in the offer; later ones (a TURN relay over TLS, a
// slow STUN answer) follow as "candidate" messages (trickle ICE).
const OFFER_GATHER_MS = 500;

function waitForIce(conn) {
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

async function connectMedia() {
  // STUN/TURN with credentials minted for this join (welcome.ice_servers).
  pc = new RTCPeerConnection({ iceServers });
  gathered = candidateLog(pc);
  pathReported = null;
  // Read-only hook for diagnostics and the end-to-end tests (getStats()).
  window.__vgpc = pc;
  for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
  pc.addEventListener("track", (event) => {
    const mid = event.transceiver.mid;
    let stream = streamsByMid.get(mid);
    if (!stream) { stream = new MediaStream(); streamsByMid.set(mid, stream); }
    stream.addTrack(event.track);
    renderGrid();
  });
  const conn = pc;
  conn.addEventListener("connectionstatechange", () => onConnectionState(conn));
  let offerSent = false;
  conn.addEventListener("icecandidate", (event) => {
    const c = event.candidate;
    if (!offerSent || conn !== pc || !c || !c.candidate) return;
    send({ type: "candidate", candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex });
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitForIce(pc);
  // Same synchronous step: every candidate not in this SDP is trickled afterwards.
  send({ type: "offer", sdp: pc.localDescription.sdp });
  offerSent = true;
  offerSentAt = performance.now();
  if (!window.__vgtimes.offer) window.__vgtimes.offer = offerSentAt;
  clearTimeout(connectTimer);
  connectTimer = setTimeout(() => connectTimedOut(conn), CONNECT_TIMEOUT_MS);
}

function elapsedMs() {
  return Math.max(0, Math.round(performance.now() - offerSentAt));
}

function showPath(text) {
  for (const id of ["netpath", "room-netpath"]) $(id).textContent = text;
}

// Show (and report once per path) the selected candidate pair. Also called when the
// browser moves to another pair by itself (UDP dropped: it may switch to a relay).
async function updatePath(conn) {
  const info = await selectedPath(conn, gathered).catch(() => null);
  if (!info || conn !== pc) return;
  showPath(PATH_TEXT[info.path]);
  $("app").dataset.netpath = info.path;
  if (pathReported !== info.path) {
    pathReported = info.path;
    send({ type: "netinfo", state: "connected", elapsed_ms: elapsedMs(), ...info });
  }
}

function watchPairChanges(conn) {
  const sender = conn.getSenders().find((s) => s.transport);
  const ice = sender && sender.transport.iceTransport;
  if (ice && !ice.__vgWatched) {
    ice.__vgWatched = true;
    ice.addEventListener("selectedcandidatepairchange", () => {
      if (conn.connectionState === "connected") updatePath(conn);
    });
  }
}

async function onConnectionState(conn) {
  if (conn !== pc) return;
  const state = conn.connectionState;
  if (state === "connected") {
    if (!window.__vgtimes.connected) window.__vgtimes.connected = performance.now();
    watchPairChanges(conn);
    clearTimeout(connectTimer);
    clearTimeout(disconnectTimer);
    await updatePath(conn);
  } else if (state === "disconnected" && admitted) {
    // Wi-Fi to cellular, a cable pulled: give ICE a moment to recover by itself.
    clearTimeout(disconnectTimer);
    disconnectTimer = setTimeout(() => {
      if (conn === pc && conn.connectionState !== "connected") networkChanged();
    }, DISCONNECTED_REJOIN_MS);
  } else if (state === "failed") {
    if (admitted) networkChanged();
    else connectTimedOut(conn);
  }
}

// Nothing connected in time: say why in words a person can act on, report the cause
// for the audit log, and free the server's side (leave) rather than spin.
function connectTimedOut(conn) {
  if (conn !== pc || admitted || conn.connectionState === "connected") return;
  clearTimeout(connectTimer);
  const cause = failureCause(iceServers, gathered);
  send({ type: "netinfo", state: "failed", cause, elapsed_ms: elapsedMs() });
  showVerdict(false, "Cannot connect", FAILURE_TEXT[cause], "Then press “Try again”.");
  showPath("No network path to the video server.");
  $("app").dataset.netpath = "failed";
  setStatus("Your camera could not reach the gate.");
  leaving = true;
  send({ type: "leave" });
  resetPeerConnection();
  // A fresh page is a fresh join: new credentials, new candidates.
  reloadOnStart = true;
  $("start").textContent = "Try again";
  $("start").hidden = false;
}

// The media path died while admitted. aiortc cannot restart ICE, so the page
// rejoins: a new connection with the rejoin token, admitted again without
// re-verification while the server's grace window lasts (docs/protocol.md).
function networkChanged() {
  if (leaving || !ws) return;
  clearTimeout(disconnectTimer);
  send({ type: "netinfo", state: "rejoining", cause: "network_changed" });
  $("room-status").textContent = "Network changed, rejoining…";
  showPath("Reconnecting…");
  // Closing the socket ends the session on the server (into its rejoin window). A
  // socket on a network that is gone may take long to report its close: do not wait
  // for it, open the new one (the old one's events are ignored from now on).
  const old = ws;
  ws = null;
  old.close();
  resetPeerConnection();
  setTimeout(openSocket, 1000);
}

async function onServerOffer(sdp) {
  await pc.setRemoteDescription({ type: "offer", sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: "answer", sdp: pc.localDescription.sdp });
}

function renderGrid() {
  const grid = $("grid");
  const wanted = new Set(peers.map((p) => p.id));
  for (const tile of grid.querySelectorAll(".tile.peer")) {
    if (!wanted.has(tile.dataset.peer)) tile.remove();
  }
  for (const peer of peers) {
    let tile = grid.querySelector(`.tile.peer[data-peer="${CSS.escape(peer.id)}"]`);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile peer";
      tile.dataset.peer = peer.id;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      const caption = document.createElement("figcaption");
      tile.append(video, caption);
      grid.append(tile);
    }
    tile.querySelector("figcaption").textContent =
      peer.name + (peer.audio === false ? " (muted)" : "") + (peer.video === false ? " (camera off)" : "");
    const tracks = [];
    for (const mid of peer.mids) {
      const stream = streamsByMid.get(mid);
      if (stream) tracks.push(...stream.getTracks());
    }
    tracks.push(...janusTracks(peer.id)); // rooms whose media Janus forwards
    const video = tile.querySelector("video");
    const current = video.srcObject ? video.srcObject.getTracks().map((t) => t.id).join() : "";
    if (current !== tracks.map((t) => t.id).join()) {
      video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    }
  }
  $("room-status").textContent = peers.length
    ? `${peers.length} other ${peers.length === 1 ? "person" : "people"} in the room.`
    : "You are the only one here so far.";
}

function enterRoom(message) {
  admitted = true;
  $("room-welcome").textContent = message ? `Verified. ${message}` : "";
  reconnects = 0;
  // The lobby is done: no stale hint, progress or verdict is left behind it.
  $("lobby").hidden = true;
  $("verdict").hidden = true;
  $("prompt").hidden = true;
  $("progress").value = 0;
  setStatus("");
  $("room").hidden = false;
  $("self-video").srcObject = localStream;
  renderGrid();
}

// Milliseconds since navigation start when the gate first saw a frame and decided;
// read by bench/bench_gate.py.
window.__vgtimes = {};

function onMessage(msg) {
  if (msg.type === "state" && msg.state === "checking" && !window.__vgtimes.checking) {
    window.__vgtimes.checking = performance.now();
  }
  if (msg.type === "verdict" && !window.__vgtimes.verdict) {
    window.__vgtimes.verdict = performance.now();
  }
  switch (msg.type) {
    case "welcome":
      if (msg.rejoin) sessionStorage.setItem(REJOIN_KEY, msg.rejoin);
      const resumeRefused = admitted && !msg.resumed;
      if (resumeRefused) {
        // The blip outlasted the grace window: the server verifies again, in the lobby.
        backToLobby("Your connection dropped for too long, so the gate checks you again.");
      }
      iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
      connectMedia().catch((err) => setStatus("Could not connect media: " + err.message));
      $("who").textContent = msg.person
        ? `Joining ${msg.room} as ${msg.person}.`
        : `Joining ${msg.room}.`;
      $("self-name").textContent = msg.person || "You";
      if (!resumeRefused) setStatus("Connecting your camera to the gate…");
      break;
    case "progress": {
      $("progress").max = msg.required;
      $("progress").value = msg.frames;
      setStatus(msg.message || `Checking… ${msg.frames} of ${msg.required}`);
      break;
    }
    case "prompt": {
      // Liveness challenge: one action at a time, "Step 1 of 3", with its time limit.
      $("prompt").hidden = !msg.text;
      const step = msg.steps && msg.action ? `Step ${msg.step} of ${msg.steps}: ` : "";
      const limit = msg.time_limit_s ? ` (${Math.round(msg.time_limit_s)} s)` : "";
      $("prompt").textContent = msg.text ? `${step}${msg.text}${limit}` : "";
      if (msg.steps) {
        $("progress").max = msg.steps;
        $("progress").value = Math.max(0, (msg.step || 1) - 1);
      }
      break;
    }
    case "flash":
      // Screen-light challenge: the colours' light on the face must answer in sync.
      runFlash(msg, { announce: setStatus, stream: localStream });
      break;
    case "state":
      if (msg.state === "checking" || msg.state === "reverifying") {
        $("verdict").hidden = true;
        $("retry").hidden = true;
        setStatus("Checking… look at the camera.");
      }
      break;
    case "verdict":
      stopFlash();
      $("prompt").hidden = true;
      if (msg.admitted) {
        enterRoom(msg.message);
        sendMediaState();  // a rejoined session tells the others its mute/camera state again
      } else {
        const next = msg.final
          ? "No attempts left for this visit."
          : `${msg.attempts_left} attempt${msg.attempts_left === 1 ? "" : "s"} left.`;
        showVerdict(false, "Not admitted", msg.message, next);
        $("retry").hidden = msg.final;
        setStatus(msg.final ? "Entry refused." : "Press “Try again” when ready.");
        if (admitted && msg.final) { exitRoom("Removed from the room: " + msg.message); }
      }
      break;
    case "offer":
      onServerOffer(msg.sdp).catch((err) => console.error("renegotiation failed", err));
      break;
    case "answer":
      pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      break;
    case "peers":
      peers = msg.peers;
      renderGrid();
      break;
    case "janus": // the room's media flows through Janus: enter it with this pass
      joinJanus(msg, localStream, iceServers, renderGrid)
        .catch((err) => setStatus("Could not reach the room's media server: " + err.message));
      break;
    case "reverify":
      $("room").hidden = true;
      $("lobby").hidden = false;
      $("verdict").hidden = true;
      $("retry").hidden = true;
      // The lobby's preview and prompt overlay serve the re-verification challenge.
      setStatus(msg.paused
        ? "The host asked you to verify again. The others do not see or hear you until you pass."
        : "The host asked you to verify again.");
      break;
    case "error":
      console.warn("server error", msg.code, msg.message);
      if (msg.fatal) {
        showVerdict(false, "Cannot join", msg.message, "");
        $("start").hidden = true;
      }
      break;
    case "bye":
      leaving = true;
      break;
    default:
      break;
  }
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const sock = new WebSocket(`${scheme}://${location.host}/ws`);
  ws = sock;
  sock.addEventListener("open", () => {
    const rejoin = sessionStorage.getItem(REJOIN_KEY);
    send({ type: "join", room: roomSlug, invite, rejoin });
    // The media connection starts on "welcome", which carries the ICE servers.
  });
  sock.addEventListener("message", (event) => {
    if (sock === ws) onMessage(JSON.parse(event.data));
  });
  sock.addEventListener("close", () => {
    if (leaving || sock !== ws) return;
    if (admitted && reconnects < RECONNECT_DELAYS_MS.length) {
      // A short blip: rejoin without re-verifying while the grace window lasts.
      $("room-status").textContent = "Connection lost, rejoining…";
      resetPeerConnection();
      setTimeout(openSocket, RECONNECT_DELAYS_MS[reconnects]);
      reconnects += 1;
    } else if (admitted) {
      exitRoom("The connection to the server is lost. Reload the page to join again.");
    } else {
      setStatus("Connection to the server closed. Reload the page to try again.");
    }
  });
}

function resetPeerConnection() {
  clearTimeout(connectTimer);
  clearTimeout(disconnectTimer);
  if (pc) pc.close();
  pc = null;
  leaveJanus();
  streamsByMid.clear();
  peers = [];
}

function backToLobby(text) {
  admitted = false;
  leaveJanus();
  peers = [];
  renderGrid();
  $("room").hidden = true;
  $("lobby").hidden = false;
  $("verdict").hidden = true;
  $("retry").hidden = true;
  setStatus(text);
}

function currentMediaState() {
  const tracks = localStream ? localStream.getTracks() : [];
  return {
    audio: tracks.filter((t) => t.kind === "audio").every((t) => t.enabled),
    video: tracks.filter((t) => t.kind === "video").every((t) => t.enabled),
  };
}

function sendMediaState() {
  const state = currentMediaState();
  if (!state.audio || !state.video) send({ type: "media", ...state });
}

function exitRoom(text) {
  leaving = true;
  send({ type: "leave" });
  if (ws) ws.close();
  resetPeerConnection();
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  $("room").hidden = true;
  $("lobby").hidden = false;
  $("start").hidden = true;
  $("retry").hidden = true;
  setStatus(text);
}

// Opening the room link is the request to join: the camera starts at once (the
// browser asks for permission first). The button only appears when that fails.
async function start() {
  if (reloadOnStart) {
    location.reload();
    return;
  }
  $("start").hidden = true;
  $("verdict").hidden = true;
  setStatus("Turning on your camera…");
  try {
    localStream = await openCamera();
  } catch (err) {
    showVerdict(false, "No camera", "The browser gave no camera: " + err.message,
      "Allow camera access, then press the button.");
    $("start").textContent = "Turn on camera";
    $("start").hidden = false;
    return;
  }
  $("preview").srcObject = localStream;
  openSocket();
}

$("start").addEventListener("click", start);
start();

$("retry").addEventListener("click", () => {
  $("retry").hidden = true;
  $("verdict").hidden = true;
  send({ type: "ready" });
});

function toggle(button, kind, offLabel, onLabel) {
  const track = localStream && localStream.getTracks().find((t) => t.kind === kind);
  if (!track) return;
  track.enabled = !track.enabled;
  button.setAttribute("aria-pressed", String(!track.enabled));
  button.textContent = track.enabled ? offLabel : onLabel;
  send({ type: "media", ...currentMediaState() });
}

$("mute").addEventListener("click", (e) => toggle(e.currentTarget, "audio", "Mute", "Unmute"));
$("camera").addEventListener("click", (e) => toggle(e.currentTarget, "video", "Camera off", "Camera on"));
$("leave").addEventListener("click", () => {
  sessionStorage.removeItem(REJOIN_KEY);
  exitRoom("You left the room.");
});
