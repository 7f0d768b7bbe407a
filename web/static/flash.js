// Screen-light challenge (docs/liveness.md, docs/protocol.md `flash`): fill the screen
// with the server's colour sequence so the light on the participant's face answers it.
// No build step; an ES module imported by room.js.
//
// Safety first (WCAG 2.3.1): a step shorter than MIN_STEP_MS (at most three changes a
// second) is never shown, whatever the server sent; rooms with flashing turned off
// (data-no-flashing on #app) never flash; Escape stops the flashing at once.

const MIN_STEP_MS = 334;
const MAX_STEPS = 8;
const COLOR = /^#[0-9a-f]{6}$/i;

let running = null;

/** Whether a `flash` message is one this page may show. */
export function safeSequence(sequence) {
  return Array.isArray(sequence) && sequence.length > 0 && sequence.length <= MAX_STEPS &&
    sequence.every((s) => s && COLOR.test(String(s.color)) &&
      Number.isFinite(s.ms) && s.ms >= MIN_STEP_MS && s.ms <= 5000);
}

function overlay(text, stream) {
  const el = document.createElement("div");
  el.className = "flash-overlay";
  el.setAttribute("aria-hidden", "true"); // the live region below speaks for it
  if (stream) {
    // A small mirrored preview, so the person can keep their face in view.
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.srcObject = stream;
    el.append(video);
  }
  const note = document.createElement("p");
  note.textContent = text;
  el.append(note);
  document.body.append(el);
  return el;
}

/**
 * Show `msg.sequence` ([{color, ms}]) starting `msg.lead_ms` after now.
 * `announce(text)` puts text in the page's live region; `stream` (the camera) is shown
 * small in the middle. Resolves with "done", "stopped", "refused" or "disabled".
 */
export function runFlash(msg, { announce = () => {}, root = document.getElementById("app"), stream = null } = {}) {
  stopFlash();
  if (root && root.dataset.noFlashing !== undefined) {
    announce("This room does not flash the screen.");
    return Promise.resolve("disabled");
  }
  if (!safeSequence(msg.sequence)) {
    console.warn("flash sequence refused: too fast or malformed", msg.sequence);
    return Promise.resolve("refused");
  }
  const lead = Math.max(0, Math.min(Number(msg.lead_ms) || 0, 5000));
  const total = msg.sequence.reduce((sum, s) => sum + s.ms, 0);
  announce(`The screen will flash colours for about ${Math.ceil(total / 1000)} seconds: ` +
    "keep your face in view. Press Escape to stop.");
  return new Promise((resolve) => {
    const started = performance.now() + lead;
    let el = null;
    let frame = 0;
    const finish = (how) => {
      cancelAnimationFrame(frame);
      document.removeEventListener("keydown", onKey);
      if (el) el.remove();
      running = null;
      resolve(how);
    };
    const onKey = (event) => { if (event.key === "Escape") finish("stopped"); };
    document.addEventListener("keydown", onKey);
    // The colour on screen is chosen from the clock on every animation frame, so late
    // frames never stretch or shift the sequence: each colour starts on time.
    const paint = (now) => {
      const elapsed = now - started;
      if (elapsed >= total) { finish("done"); return; }
      if (elapsed >= 0) {
        if (!el) el = overlay("Keep your face in view", stream);
        let t = elapsed;
        const step = msg.sequence.find((s) => (t -= s.ms) < 0);
        el.style.backgroundColor = step.color;
      }
      frame = requestAnimationFrame(paint);
    };
    frame = requestAnimationFrame(paint);
    running = finish;
  });
}

/** Stop any flashing now (a verdict arrived, the page is leaving). */
export function stopFlash() {
  if (running) running("stopped");
}
