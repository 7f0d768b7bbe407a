// Pre-join screen (issue 15): camera and microphone choice, the preview, a microphone
// level meter, and what to do when the browser gives no camera. Nothing here talks to
// the server: the check starts only when the person presses "Start check" (room.js).
// No build step; an ES module imported by room.js.

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 } };

/** Camera (required) and microphone (optional: no microphone is no reason to refuse). */
export async function openCamera({ cameraId = "", micId = "" } = {}) {
  const video = cameraId ? { ...VIDEO, deviceId: { exact: cameraId } } : VIDEO;
  const audio = micId ? { deviceId: { exact: micId } } : true;
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (err) {
    if (err && err.name === "NotAllowedError") throw err;  // asked once is enough
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  }
}

/** Fill the two pickers with the devices the browser lists (labels need permission). */
export async function listDevices(cameraSelect, micSelect, stream) {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const current = (kind) => {
    const track = stream && stream.getTracks().find((t) => t.kind === kind);
    return track ? track.getSettings().deviceId : "";
  };
  const fill = (select, kind, trackKind, fallback) => {
    select.replaceChildren();
    const found = devices.filter((d) => d.kind === kind);
    found.forEach((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${fallback} ${i + 1}`;
      select.append(option);
    });
    if (!found.length) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = `No ${fallback.toLowerCase()} found`;
      select.append(option);
    }
    const selected = current(trackKind);
    if (selected) select.value = selected;
  };
  fill(cameraSelect, "videoinput", "video", "Camera");
  fill(micSelect, "audioinput", "audio", "Microphone");
}

/**
 * Drive `meter` (a <meter> 0..1) from the stream's microphone. Returns
 * {level(), stop()}: level() is also the own tile's speaking level in the meeting.
 */
export function micMeter(stream, meter) {
  const track = stream && stream.getAudioTracks()[0];
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  if (!track || !AudioCtx) {
    if (meter) meter.value = 0;
    return { level: () => 0, stop: () => {}, resume: () => {} };
  }
  const ctx = new AudioCtx();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let current = 0;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    current = track.enabled ? rms : 0;  // linear, as getStats' audioLevel
    // Speech sits around 0.02-0.2 RMS: a square root spreads it over the meter.
    if (meter) meter.value = Math.min(1, Math.sqrt(current) * 1.5);
  }, 100);
  return {
    level: () => current,
    resume: () => { if (ctx.state === "suspended") ctx.resume().catch(() => {}); },
    stop: () => { clearInterval(timer); ctx.close().catch(() => {}); if (meter) meter.value = 0; },
  };
}

/** What went wrong with the camera and how to allow it again, in this browser's words. */
export function cameraHelp(err) {
  const name = err && err.name;
  const ua = navigator.userAgent;
  let where;
  if (/Firefox\//.test(ua)) {
    where = "Click the crossed-out camera icon in the address bar, remove the block for the " +
      "camera and microphone, then press “Try camera again”.";
  } else if (/Safari\//.test(ua) && !/Chrom(e|ium)\//.test(ua)) {
    where = "Open Safari › Settings for This Website, set Camera and Microphone to Allow, " +
      "then press “Try camera again”.";
  } else {
    where = "Click the camera icon (or the site controls left of the address) in the address " +
      "bar, choose Allow for Camera and Microphone, then press “Try camera again”.";
  }
  if (name === "NotAllowedError" || name === "SecurityError") {
    return { title: "Camera blocked", reason: "This browser is not allowed to use your camera.", next: where };
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return { title: "No camera found", reason: "The browser found no camera.",
      next: "Connect a camera (or pick another one), then press “Try camera again”." };
  }
  if (name === "NotReadableError") {
    return { title: "Camera busy", reason: "Another app is using your camera.",
      next: "Close the other app (a video call, the camera app), then press “Try camera again”." };
  }
  return { title: "No camera", reason: `The browser gave no camera (${name || "unknown error"}).`,
    next: where };
}

/**
 * The camera and microphone of this page: the preview, the pickers and the meter.
 * `els`: {preview, wrap, devices, cameraSelect, micSelect, meter}.
 */
export class Camera {
  constructor(els) {
    this.els = els;
    this.stream = null;
    this.meter = null;
  }

  /** Open the chosen devices (throws what getUserMedia threw: see cameraHelp). */
  async open() {
    this.release();
    const { cameraSelect, micSelect } = this.els;
    this.stream = await openCamera({ cameraId: cameraSelect.value, micId: micSelect.value });
    this.els.preview.srcObject = this.stream;
    this.els.wrap.classList.remove("off");
    this.els.devices.hidden = false;
    this.meter = micMeter(this.stream, this.els.meter);
    await listDevices(cameraSelect, micSelect, this.stream);
    return this.stream;
  }

  release() {
    if (this.meter) { this.meter.stop(); this.meter = null; }
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
  }

  /** Camera and microphone off (tracks stopped: the browser's indicator goes out). */
  off() {
    this.release();
    this.els.preview.srcObject = null;
    this.els.wrap.classList.add("off");
    this.els.devices.hidden = true;
  }

  /** The check runs on these devices: the choice is fixed from now on. */
  lockChoice() {
    this.els.cameraSelect.disabled = true;
    this.els.micSelect.disabled = true;
    if (this.meter) this.meter.resume();
  }

  level() { return this.meter ? this.meter.level() : 0; }

  track(kind) { return this.stream && this.stream.getTracks().find((t) => t.kind === kind); }
}
