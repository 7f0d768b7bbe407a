// The guided check (issue 15): prompts with a countdown over the preview, a tick per
// passed step, the progress bar, live quality hints, and a refusal that says which
// step failed, what to try, the attempts left, the lockout and whom to contact.
// Protocol: docs/protocol.md (`progress`, `prompt`, `verdict`). No build step.

// A hold (`progress.hold`) is sent for every analysed frame that has the problem; a
// good frame during a challenge sends nothing, so a hint also clears after this long
// without a hold.
const HINT_CLEAR_MS = 1500;

const HINTS = {
  no_face: "Face the camera: put your face in the oval",
  multiple_faces: "Only one face, please: nobody else in view",
  no_movement: "Move your head a little",
};

// Short words for the quality gate's findings (server/face/quality.py messages).
const QUALITY_HINTS = [
  [/too small/i, "Move closer"],
  [/too dark/i, "More light, please: light in front of you"],
  [/overexposed/i, "Too bright: move away from direct light"],
  [/blurred/i, "Hold still"],
  [/head is turned/i, "Look straight at the camera"],
];

export const REASON_HELP = {
  no_face: "Sit facing the camera with your whole face in the oval, in good light.",
  multiple_faces: "Make sure nobody else is in view, including photos or screens behind you.",
  poor_quality: "Move closer, add light in front of you, and hold still.",
  no_movement: "Move your head a little while the check runs: a still picture is refused.",
  not_recognised: "Check that this link was made for you. If it was, ask the organiser to check " +
    "your enrolled photos.",
  ambiguous: "The organiser needs to check the enrolled photos.",
  liveness: "Do each prompt clearly as soon as it shows, before the countdown ends, with your " +
    "face in the oval and in good light.",
  timed_out: "Check that your camera works and your face is in the oval, then try again.",
  internal: "This try did not count. Try again.",
  locked_out: "Wait until the lock ends, or ask the organiser for help.",
};

export function hintFor(msg) {
  if (!msg.hold) return "";
  if (msg.hold === "poor_quality") {
    const found = QUALITY_HINTS.find(([re]) => re.test(msg.message || ""));
    return found ? found[1] : "Move closer and add light";
  }
  return HINTS[msg.hold] || msg.message || "";
}

/** Which step the refusal happened at, in words. */
export function failedStep(reason, prompt) {
  if (prompt && prompt.action) {
    return `Stopped at step ${prompt.step} of ${prompt.steps}: “${prompt.text}”.`;
  }
  if (prompt) return "Stopped at the last step: looking at the camera after the prompts.";
  if (reason === "locked_out") return "";
  return "Stopped at the face check, before any prompt.";
}

export class GuidedCheck {
  /** `els`: {prompt, promptText, countdown, hint, steps, progress, status}; `announce(text)`. */
  constructor(els, announce) {
    this.els = els;
    this.announce = announce;
    this.current = null;
    this.timer = null;
    this.hintTimer = null;
    this.hint = "";
  }

  /** A new attempt: nothing of the last one stays on screen. */
  reset() {
    this.stopTimers();
    this.current = null;
    this.setHint("");
    this.els.prompt.hidden = true;
    this.els.steps.replaceChildren();
    this.els.steps.hidden = true;
    this.els.progress.max = 1;
    this.els.progress.value = 0;
  }

  stopTimers() {
    clearInterval(this.timer);
    clearTimeout(this.hintTimer);
    this.timer = null;
  }

  /** The prompt the person was last given (for the refusal text). */
  lastPrompt() { return this.current; }

  setHint(text) {
    clearTimeout(this.hintTimer);
    if (text) this.hintTimer = setTimeout(() => this.setHint(""), HINT_CLEAR_MS);
    if (text === this.hint) return;
    this.hint = text;
    this.els.hint.textContent = text;
    this.els.hint.hidden = !text;
    if (text) this.announce(text);
  }

  progress(msg) {
    this.setHint(hintFor(msg));
    if (this.current) {
      // During a challenge `progress` counts steps; ticks follow the prompts.
      return;
    }
    this.els.progress.max = Math.max(1, msg.required);
    this.els.progress.value = msg.frames;
    this.els.status.textContent = msg.hold ? hintFor(msg) : `Checking… ${msg.frames} of ${msg.required}`;
  }

  prompt(msg) {
    if (!msg.text) {
      this.els.prompt.hidden = true;
      this.stopTimers();
      return;
    }
    const steps = Math.max(1, msg.steps || 1);
    const step = Math.max(1, msg.step || 1);
    const last = !msg.action;
    this.current = { text: msg.text, action: msg.action, step, steps };
    this.renderSteps(step, steps, last);
    this.els.progress.max = steps;
    this.els.progress.value = last ? steps : step - 1;
    this.els.prompt.hidden = false;
    this.els.promptText.textContent = last ? msg.text : `${step}/${steps} · ${msg.text}`;
    this.setHint("");
    const limit = Number(msg.time_limit_s) || 0;
    this.countdown(limit);
    const spoken = last
      ? `All steps done. ${msg.text}.`
      : `Step ${step} of ${steps}: ${msg.text}.${limit ? ` ${Math.round(limit)} seconds.` : ""}`;
    this.els.status.textContent = spoken;
    this.announce(spoken);
  }

  renderSteps(step, steps, last) {
    const list = this.els.steps;
    list.hidden = false;
    while (list.children.length < steps) {
      const li = document.createElement("li");
      li.innerHTML = '<span class="mark" aria-hidden="true"></span><span class="label"></span>';
      li.querySelector(".label").textContent = `Step ${list.children.length + 1}`;
      list.append(li);
    }
    [...list.children].forEach((li, i) => {
      const n = i + 1;
      const done = last || n < step;
      li.className = done ? "done" : n === step ? "current" : "todo";
      li.querySelector(".mark").textContent = done ? "✓" : n === step ? "•" : "";
      if (n === step && !last) li.querySelector(".label").textContent = this.current.text;
      li.setAttribute("aria-label", `${li.querySelector(".label").textContent}: ` +
        (done ? "passed" : n === step ? "now" : "to come"));
    });
  }

  countdown(seconds) {
    clearInterval(this.timer);
    const el = this.els.countdown;
    if (!seconds) { el.textContent = ""; return; }
    const end = performance.now() + seconds * 1000;
    const paint = () => {
      const left = Math.max(0, Math.ceil((end - performance.now()) / 1000));
      el.textContent = `${left} s`;
      el.classList.toggle("urgent", left <= 2);
      if (left <= 0) clearInterval(this.timer);
    };
    paint();
    this.timer = setInterval(paint, 250);
  }
}

/**
 * The refusal, as lines a person can act on. `cfg`: {roomName, lockFailures,
 * lockWindowMin, lockMin}; `prompt`: the last prompt shown (or null).
 */
export function refusalText(msg, prompt, cfg) {
  const left = msg.attempts_left;
  const lockRule = `Each failed check counts: after ${cfg.lockFailures} failures within ` +
    `${cfg.lockWindowMin} min this link is locked for ${cfg.lockMin} min.`;
  let next;
  if (msg.reason === "locked_out") next = "You cannot try again for now. Your camera is now off.";
  else if (msg.final) next = "No attempts left for this visit. Your camera is now off.";
  else next = `${left} attempt${left === 1 ? "" : "s"} left. Press “Try again” when you are ready.`;
  return {
    title: msg.reason === "locked_out" ? "Link locked" : "Not admitted",
    reason: msg.message,
    step: failedStep(msg.reason, prompt),
    tryText: REASON_HELP[msg.reason] ? `What to try: ${REASON_HELP[msg.reason]}` : "",
    next,
    lock: msg.reason === "locked_out" || msg.reason === "internal" ? "" : lockRule,
    contact: `Need help? Contact the organiser of ${cfg.roomName}, the person who sent you this link.`,
  };
}

/** Screen readers hear each prompt and hint once: the same text is not said twice in a row. */
export function announcer(region) {
  let last = "";
  const say = (text) => {
    if (!text || text === last) return;
    last = text;
    region.textContent = text;
  };
  // After a verdict the same words start a new attempt: they may be said again.
  say.reset = () => { last = ""; };
  return say;
}

const VERDICT_PARTS = ["title", "reason", "step", "tryText", "next", "lock", "contact"];

/**
 * The verdict box (#verdict, role=alert): each part in its own line; focus moves to it
 * so keyboard and screen-reader users land on what to do next.
 */
export class VerdictBox {
  constructor(box) {
    this.box = box;
    this.parts = Object.fromEntries(VERDICT_PARTS.map((part) =>
      [part, box.querySelector(`#verdict-${part === "tryText" ? "try" : part}`)]));
  }

  clear() {
    this.box.hidden = true;
    for (const el of Object.values(this.parts)) el.textContent = "";
  }

  show(ok, title, reason, next, more = {}) {
    this.clear();
    this.box.classList.toggle("ok", ok);
    const text = { ...more, title, reason, next };
    for (const part of VERDICT_PARTS) this.parts[part].textContent = text[part] || "";
    this.box.hidden = false;
    this.box.focus();
  }
}
