// videogate participant client: lobby (camera, prompts, verdict) then the room grid.
// Protocol: docs/protocol.md. No build step; an ES module served as is.

import { runFlash, stopFlash } from "./flash.js";

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
    setTimeout(resolve, 3000);
  });
}

async function connectMedia() {
  pc = new RTCPeerConnection({ iceServers: [] });
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
  pc.addEventListener("connectionstatechange", () => {
    if (pc && pc.connectionState === "failed") setStatus("Connection to the server failed.");
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitForIce(pc);
  send({ type: "offer", sdp: pc.localDescription.sdp });
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

function enterRoom() {
  admitted = true;
  $("lobby").hidden = true;
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
      $("who").textContent = msg.person
        ? `Joining ${msg.room} as ${msg.person}.`
        : `Joining ${msg.room}.`;
      $("self-name").textContent = msg.person || "You";
      setStatus("Connecting your camera to the gate…");
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
        showVerdict(true, "Verified", msg.message, "");
        enterRoom();
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
  ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.addEventListener("open", () => {
    const rejoin = sessionStorage.getItem(REJOIN_KEY);
    send({ type: "join", room: roomSlug, invite, rejoin });
    connectMedia().catch((err) => setStatus("Could not connect media: " + err.message));
  });
  ws.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  ws.addEventListener("close", () => {
    if (leaving) return;
    if (admitted) {
      // A short blip: rejoin without re-verifying while the grace window lasts.
      $("room-status").textContent = "Connection lost, rejoining…";
      resetPeerConnection();
      setTimeout(openSocket, 1000);
    } else {
      setStatus("Connection to the server closed. Reload the page to try again.");
    }
  });
}

function resetPeerConnection() {
  if (pc) pc.close();
  pc = null;
  streamsByMid.clear();
  peers = [];
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
  const audio = localStream.getAudioTracks().every((t) => t.enabled);
  const video = localStream.getVideoTracks().every((t) => t.enabled);
  send({ type: "media", audio, video });
}

$("mute").addEventListener("click", (e) => toggle(e.currentTarget, "audio", "Mute", "Unmute"));
$("camera").addEventListener("click", (e) => toggle(e.currentTarget, "video", "Camera off", "Camera on"));
$("leave").addEventListener("click", () => {
  sessionStorage.removeItem(REJOIN_KEY);
  exitRoom("You left the room.");
});
