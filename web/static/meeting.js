// The meeting view (issue 15): a tile grid that fits the viewport, initials on tiles
// whose camera is off, and the active speaker highlighted. No DOM outside #grid; the
// protocol stays in room.js. No build step.

export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const first = words[0][0];
  const last = words.length > 1 ? words[words.length - 1][0] : "";
  return (first + last).toUpperCase();
}

/** Columns and rows for `n` tiles so that they fill the grid's box best (4:3 tiles). */
export function gridShape(n, width, height) {
  let best = { cols: 1, rows: Math.max(1, n), size: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols += 1) {
    const rows = Math.ceil(n / cols);
    const w = width / cols;
    const h = height / rows;
    const size = Math.min(w, h * 4 / 3);  // the largest 4:3 picture that fits a cell
    if (size > best.size) best = { cols, rows, size };
  }
  return best;
}

export function layoutGrid(grid) {
  const n = grid.querySelectorAll(".tile").length;
  const box = grid.getBoundingClientRect();
  const { cols, rows } = gridShape(n, box.width || window.innerWidth, box.height || window.innerHeight);
  grid.style.setProperty("--cols", String(cols));
  grid.style.setProperty("--rows", String(rows));
}

function peerCaption(peer) {
  return peer.name + (peer.audio === false ? " (muted)" : "") + (peer.video === false ? " (camera off)" : "");
}

/** One tile per admitted peer, showing the tracks forwarded for it (`peers` message). */
export function renderTiles(grid, peers, streamsByMid, extraTracks = () => []) {
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
    tile.querySelector("figcaption").textContent = peerCaption(peer);
    setTileCamera(tile, peer.video !== false, peer.name);
    const tracks = [];
    for (const mid of peer.mids) {
      const stream = streamsByMid.get(mid);
      if (stream) tracks.push(...stream.getTracks());
    }
    tracks.push(...extraTracks(peer.id)); // rooms whose media Janus forwards
    tile.dataset.tracks = tracks.map((t) => t.id).join();
    const video = tile.querySelector("video");
    const current = video.srcObject ? video.srcObject.getTracks().map((t) => t.id).join() : "";
    if (current !== tile.dataset.tracks) {
      video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    }
  }
  layoutGrid(grid);
}

/** Show the initials instead of a black picture when the tile's camera is off. */
export function setTileCamera(tile, on, name, label = initials(name)) {
  let badge = tile.querySelector(".initials");
  if (!badge) {
    badge = document.createElement("div");
    badge.className = "initials";
    badge.setAttribute("aria-hidden", "true");
    tile.prepend(badge);
  }
  badge.textContent = label;
  badge.hidden = on;
  tile.classList.toggle("camera-off", !on);
}

const SPEAKING_LEVEL = 0.02;

/**
 * Highlight the loudest tile. `getPc()` is the current peer connection; `selfLevel()`
 * the own microphone's level (0..1, from the pre-join meter). Polls getStats: the
 * inbound audio's `audioLevel` per track, matched to the tile showing that track.
 */
export function watchSpeakers(grid, getPc, selfLevel) {
  const timer = setInterval(async () => {
    const levels = new Map();
    const pc = getPc();
    if (pc) {
      const stats = await pc.getStats().catch(() => null);
      if (stats) {
        stats.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "audio" && s.trackIdentifier) {
            levels.set(s.trackIdentifier, s.audioLevel || 0);
          }
        });
      }
    }
    let loudest = null;
    let top = SPEAKING_LEVEL;
    for (const tile of grid.querySelectorAll(".tile")) {
      let level = 0;
      if (tile.classList.contains("self")) level = selfLevel();
      else for (const id of (tile.dataset.tracks || "").split(",")) level = Math.max(level, levels.get(id) || 0);
      if (level > top) { top = level; loudest = tile; }
    }
    for (const tile of grid.querySelectorAll(".tile")) tile.classList.toggle("speaking", tile === loudest);
  }, 500);
  return () => clearInterval(timer);
}
