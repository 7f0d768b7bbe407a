// videogate participant client: pre-join (preview, devices), the guided check (prompts,
// hints, verdict), then the meeting view. Protocol: docs/protocol.md. No build step; an
// ES module served as is. The dead-link answer is rendered by the server (server/prejoin.py):
// this script only runs for a link that can be used.

import {
  CONNECT_TIMEOUT_MS, DISCONNECTED_REJOIN_MS, FAILURE_TEXT, PATH_REFRESH_MS, PATH_TEXT,
  candidateLog, failureCause, selectedPath, waitForIce,
} from "./netpath.js";
import { runFlash, stopFlash } from "./flash.js";
import { Camera, cameraHelp } from "./prejoin.js";
import { GuidedCheck, VerdictBox, announcer, refusalText } from "./check.js";
import { layoutGrid, renderTiles, setTileCamera, watchSpeakers } from "./meeting.js";
import { joinJanus, janusTracks, leaveJanus } from "./janus-client.js";

const app = document.getElementById("app");
const roomSlug = app.dataset.room;
const params = new URLSearchParams(location.search);
const invite = params.get("invite");
const $ = (id) => document.getElementById(id);
const CFG = {
  roomName: app.dataset.roomName,
  lockFailures: app.dataset.lockFailures,
  lockWindowMin: app.dataset.lockWindowMin,
  lockMin: app.dataset.lockMin,
};

const REJOIN_KEY = `videogate.rejoin.${roomSlug}`;
// Set before a reload that should go straight on with the check ("Try again" after a
// network failure, "Rejoin"): the person already pressed a button for it.
const AUTOSTART_KEY = `videogate.autostart.${roomSlug}`;
let ws = null;
let pc = null;
let checkStarted = false;
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
let pathTimer = null;
let pathRead = 0; // the newest path read started: an older answer arriving late is dropped
let offerSentAt = 0;
let pathReported = null;
let reloadOnStart = false;
let stopSpeakers = null;

function setStatus(text) { $("status").textContent = text; }

const announce = announcer($("announce"));
const camera = new Camera({
  preview: $("preview"), wrap: $("preview-wrap"), devices: $("devices"),
  cameraSelect: $("camera-select"), micSelect: $("mic-select"), meter: $("mic-level"),
});

const check = new GuidedCheck({
  prompt: $("prompt"), promptText: $("prompt-text"), countdown: $("countdown"), hint: $("hint"),
  steps: $("steps"), progress: $("progress"), status: $("status"),
}, announce);

const verdict = new VerdictBox($("verdict"));
const clearVerdict = () => verdict.clear();
const showVerdict = (ok, title, reason, next, more = {}) => verdict.show(ok, title, reason, next, more);

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

async function connectMedia() {
  // STUN/TURN with credentials minted for this join (welcome.ice_servers).
  pc = new RTCPeerConnection({ iceServers });
  gathered = candidateLog(pc);
  pathReported = null;
  // Read-only hook for diagnostics and the end-to-end tests (getStats()).
  window.__vgpc = pc;
  for (const track of camera.stream.getTracks()) pc.addTrack(track, camera.stream);
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
  const read = ++pathRead;
  const info = await selectedPath(conn, gathered).catch(() => null);
  if (!info || conn !== pc || read !== pathRead) return;
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
    if (!pathTimer) {
      pathTimer = setInterval(() => {
        if (pc && pc.connectionState === "connected") updatePath(pc);
      }, PATH_REFRESH_MS);
    }
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
  check.reset();
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
  renderTiles($("grid"), peers, streamsByMid, janusTracks);
  $("room-status").textContent = peers.length
    ? `${peers.length} other ${peers.length === 1 ? "person" : "people"} in the room.`
    : "You are the only one here so far.";
}

window.addEventListener("resize", () => { if (admitted) layoutGrid($("grid")); });

function enterRoom(message) {
  admitted = true;
  $("room-welcome").textContent = message ? `Verified. ${message}` : "";
  reconnects = 0;
  // The lobby is done: no stale hint, progress or verdict is left behind it.
  check.reset();
  clearVerdict();
  $("lobby").hidden = true;
  $("left").hidden = true;
  setStatus("");
  document.body.classList.add("in-meeting");
  $("room").hidden = false;
  $("self-video").srcObject = camera.stream;
  renderGrid();
  if (!stopSpeakers) stopSpeakers = watchSpeakers($("grid"), () => pc, () => camera.level());
  // Focus on the meeting, not on a button a stray Enter would press (Leave).
  $("meeting-title").focus();
}

function leaveMeetingView() {
  document.body.classList.remove("in-meeting");
  $("room").hidden = true;
  $("room-welcome").textContent = "";
  if (stopSpeakers) { stopSpeakers(); stopSpeakers = null; }
}

// Milliseconds since navigation start when the gate first saw a frame and decided;
// read by bench/bench_gate.py.
window.__vgtimes = {};

function onVerdict(msg) {
  stopFlash();
  announce.reset();
  const prompt = check.lastPrompt();
  check.reset();
  if (msg.admitted) {
    enterRoom(msg.message);
    sendMediaState();  // a rejoined session tells the others its mute/camera state again
    return;
  }
  if (admitted && msg.final) {
    exitRoom("Removed from the room: " + msg.message);
    return;
  }
  const text = refusalText(msg, prompt, CFG);
  if (msg.final) stopCamera();
  showVerdict(false, text.title, text.reason, text.next, text);
  $("retry").hidden = msg.final;
  setStatus(msg.final ? "Entry refused." : "Press “Try again” when ready.");
}

function onMessage(msg) {
  if (msg.type === "state" && msg.state === "checking" && !window.__vgtimes.checking) {
    window.__vgtimes.checking = performance.now();
  }
  if (msg.type === "verdict" && !window.__vgtimes.verdict) {
    window.__vgtimes.verdict = performance.now();
  }
  switch (msg.type) {
    case "welcome": {
      if (msg.rejoin) sessionStorage.setItem(REJOIN_KEY, msg.rejoin);
      const resumeRefused = admitted && !msg.resumed;
      if (resumeRefused) {
        // The blip outlasted the grace window: the server verifies again, in the lobby.
        backToLobby("Your connection dropped for too long, so the gate checks you again.");
      }
      iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
      connectMedia().catch((err) => setStatus("Could not connect media: " + err.message));
      // The invitee's name is not shown before the check passes (a stranger may hold
      // the link); the own tile is "You".
      if (!resumeRefused) setStatus("Connecting your camera to the check…");
      break;
    }
    case "progress":
      check.progress(msg);
      break;
    case "prompt":
      // Liveness challenge: one action at a time, with its countdown.
      check.prompt(msg);
      break;
    case "flash":
      // Screen-light challenge: the colours' light on the face must answer in sync.
      runFlash(msg, { announce: (t) => { setStatus(t); announce(t); }, stream: camera.stream });
      break;
    case "state":
      if (msg.state === "checking" || msg.state === "reverifying") {
        clearVerdict();
        $("retry").hidden = true;
        setStatus("Checking… look at the camera.");
        announce("Checking. Look at the camera.");
      }
      break;
    case "verdict":
      onVerdict(msg);
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
      joinJanus(msg, camera.stream, iceServers, renderGrid)
        .catch((err) => setStatus("Could not reach the room's media server: " + err.message));
      break;
    case "reverify":
      leaveMeetingView();
      $("lobby").hidden = false;
      clearVerdict();
      $("retry").hidden = true;
      check.reset();
      $("progress").hidden = false;
      // The lobby's preview and prompt overlay serve the re-verification challenge.
      setStatus(msg.paused
        ? "The host asked you to verify again. The others do not see or hear you until you pass."
        : "The host asked you to verify again.");
      announce($("status").textContent);
      break;
    case "lobby":
      // The host sent this person back to the lobby, or gave their attempts back (the
      // owner branch's host decisions): the check can start again from here.
      backToLobby(msg.message);
      $("retry").hidden = false;
      break;
    case "lobby":
      // The host sent this person back to the lobby, or gave their attempts back.
      backToLobby(msg.message);
      $("retry").hidden = false;
      break;
    case "error":
      console.warn("server error", msg.code, msg.message);
      if (msg.fatal) {
        check.reset();
        if (admitted) { exitRoom(msg.message); break; }
        stopCamera();
        showVerdict(false, "Cannot join", msg.message, "Your camera is now off.",
          { contact: `Need help? Contact the organiser of ${CFG.roomName}, the person who sent you this link.` });
        $("start").hidden = true;
        $("retry").hidden = true;
      }
      break;
    case "bye":
      leaving = true;
      break;
    case "redirect":
      followRedirect(msg);
      break;
    default:
      break;
  }
}

// Cluster (docs/scale.md): the room lives on another node, whose socket URL the
// server sends as "redirect"; the same join goes there. Used once: a later reconnect
// starts at this page's origin again, which finds the room wherever it lives now.
let redirectTo = null;
let redirects = 0;
function followRedirect(msg) {
  if (typeof msg.url !== "string" || !/^wss?:\/\//.test(msg.url) || redirects >= 3) return;
  redirects += 1;
  redirectTo = msg.url;
  const old = ws;
  openSocket();
  if (old) old.close();
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  if (!redirectTo) redirects = 0;
  const sock = new WebSocket(redirectTo || `${scheme}://${location.host}/ws`);
  redirectTo = null;
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
      exitRoom("The connection to the server is lost.");
    } else {
      setStatus("Connection to the server closed. Reload the page to try again.");
      announce($("status").textContent);
    }
  });
}

function resetPeerConnection() {
  clearTimeout(connectTimer);
  clearTimeout(disconnectTimer);
  clearInterval(pathTimer);
  pathTimer = null;
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
  leaveMeetingView();
  $("lobby").hidden = false;
  clearVerdict();
  $("retry").hidden = true;
  check.reset();
  $("progress").hidden = false;
  setStatus(text);
  announce(text);
}

function currentMediaState() {
  const tracks = camera.stream ? camera.stream.getTracks() : [];
  return {
    audio: tracks.filter((t) => t.kind === "audio").every((t) => t.enabled),
    video: tracks.filter((t) => t.kind === "video").every((t) => t.enabled),
  };
}

function sendMediaState() {
  const state = currentMediaState();
  if (!state.audio || !state.video) send({ type: "media", ...state });
}

// A final refusal, a dead link found late, leaving: the camera and microphone go off.
function stopCamera() {
  camera.off();
  $("self-video").srcObject = null;
  $("progress").hidden = true;
  showPath("");
  $("start-check").hidden = true;
  resetPeerConnection();
}

function exitRoom(text) {
  leaving = true;
  admitted = false;
  send({ type: "leave" });
  if (ws) ws.close();
  stopCamera();
  leaveMeetingView();
  $("lobby").hidden = true;
  $("left-reason").textContent = text;
  $("left").hidden = false;
  $("left-title").focus();
}

// The pre-join screen: the camera starts for the preview (the browser asks first);
// nothing goes to the server until "Start check".
async function preview() {
  if (reloadOnStart) {
    sessionStorage.setItem(AUTOSTART_KEY, "1");
    location.reload();
    return;
  }
  $("start").hidden = true;
  clearVerdict();
  setStatus("Turning on your camera… your browser may ask for permission.");
  try {
    await camera.open();
  } catch (err) {
    const help = cameraHelp(err);
    showVerdict(false, help.title, help.reason, help.next);
    setStatus("The camera is needed for the check.");
    $("start").textContent = "Try camera again";
    $("start").hidden = false;
    return;
  }
  setStatus("Put your face in the oval, then press “Start check” when you are ready.");
  $("start-check").hidden = false;
  const auto = sessionStorage.getItem(AUTOSTART_KEY) || window.__vgAutostart === true;
  sessionStorage.removeItem(AUTOSTART_KEY);
  if (auto) beginCheck();
}

// Another camera or microphone chosen before the check: reopen the preview with it.
async function switchDevice() {
  if (checkStarted || !camera.stream) return;
  await preview();
}

function beginCheck() {
  if (checkStarted || !camera.stream) return;
  checkStarted = true;
  camera.lockChoice();
  $("start-check").hidden = true;
  $("progress").hidden = false;
  setStatus("Starting the check…");
  announce("Starting the check. Keep your face in the oval.");
  openSocket();
}

$("start").addEventListener("click", preview);
$("start-check").addEventListener("click", beginCheck);
$("camera-select").addEventListener("change", switchDevice);
$("mic-select").addEventListener("change", switchDevice);
preview();

$("retry").addEventListener("click", () => {
  $("retry").hidden = true;
  clearVerdict();
  check.reset();
  setStatus("Checking… look at the camera.");
  send({ type: "ready" });
});

const CAMERA_NOTE = "Your camera is off. Attendance needs your camera on: while it is off, " +
  "the organiser sees “camera off” and you may not be counted as present.";

function toggle(kind) {
  const track = camera.track(kind);
  if (!track) return;
  track.enabled = !track.enabled;
  if (kind === "audio") {
    $("mute").textContent = track.enabled ? "Mute" : "Unmute";
    $("mute").classList.toggle("off", !track.enabled);
  } else {
    $("camera").textContent = track.enabled ? "Stop camera" : "Start camera";
    $("camera").classList.toggle("off", !track.enabled);
    $("camera-note").textContent = track.enabled ? "" : CAMERA_NOTE;
    $("camera-note").hidden = track.enabled;
    setTileCamera(document.querySelector(".tile.self"), track.enabled, "You", "You");
    layoutGrid($("grid"));
  }
  send({ type: "media", ...currentMediaState() });
}

$("mute").addEventListener("click", () => toggle("audio"));
$("camera").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", () => {
  sessionStorage.removeItem(REJOIN_KEY);
  exitRoom("You left the meeting.");
});
$("rejoin").addEventListener("click", () => {
  // Rejoining checks again (leaving gave up the rejoin token): straight into the check.
  sessionStorage.setItem(AUTOSTART_KEY, "1");
  location.reload();
});
$("close").addEventListener("click", () => {
  window.close();
  // Browsers only let a script close a tab it opened: otherwise go to the start page.
  setTimeout(() => { location.href = "/"; }, 200);
});
