// Room dashboard: photo enrolment (files, drag and drop, webcam) with per-photo
// verdicts, and the live lobby/room view over a websocket. Everything from the
// server is written with textContent / attributes, never as HTML.

const dashboard = document.getElementById('dashboard');
const roomId = dashboard.dataset.room;
const csrf = dashboard.dataset.csrf;

function el(tag, props = {}, text = '') {
  const node = document.createElement(tag);
  Object.entries(props).forEach(([k, v]) => {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  });
  if (text) node.textContent = text;
  return node;
}

// -- enrolment --

async function upload(article, files) {
  const personId = article.dataset.person;
  const status = article.querySelector('.upload-status');
  const list = article.querySelector('.verdicts');
  if (!files.length) return;
  const form = new FormData();
  form.append('_csrf', csrf);
  files.forEach((file) => form.append('photos', file, file.name || 'photo.jpg'));
  status.textContent = `Checking ${files.length} photo${files.length > 1 ? 's' : ''}…`;
  let body;
  try {
    const response = await fetch(`/owner/people/${personId}/photos`, {
      method: 'POST',
      body: form,
      headers: { 'X-CSRF-Token': csrf, Accept: 'application/json' },
      credentials: 'same-origin',
    });
    body = await response.json();
    if (!response.ok) {
      status.textContent = (body.error && body.error.message) || `Upload failed (${response.status}).`;
      return;
    }
  } catch (err) {
    status.textContent = `Upload failed: ${err}`;
    return;
  }
  list.replaceChildren();
  body.verdicts.forEach((v) => {
    const item = el('li', { class: `verdict ${v.ok ? 'ok' : 'bad'}`, 'data-code': v.code });
    if (v.thumbnail) item.append(el('img', { class: 'thumb', src: v.thumbnail, alt: v.filename }));
    const text = el('div');
    text.append(el('strong', {}, v.filename));
    text.append(el('span', { class: 'verdict-text' }, v.ok ? 'Accepted' : v.reasons.join(' ')));
    item.append(text);
    list.append(item);
  });
  status.textContent = `${body.enrolled} of ${body.verdicts.length} accepted.`;
  const badge = article.querySelector('.enrol-status');
  badge.textContent = `${body.faces} photo${body.faces === 1 ? '' : 's'} enrolled`;
  badge.classList.toggle('ok', body.faces > 0);
  badge.classList.toggle('pending', body.faces === 0);
}

document.querySelectorAll('article.person').forEach((article) => {
  const input = article.querySelector('.photo-input');
  const zone = article.querySelector('.dropzone');
  input.addEventListener('change', () => {
    upload(article, [...input.files]);
    input.value = '';
  });
  ['dragenter', 'dragover'].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add('over');
  }));
  ['dragleave', 'drop'].forEach((type) => zone.addEventListener(type, () => zone.classList.remove('over')));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    upload(article, [...event.dataTransfer.files]);
  });

  const box = article.querySelector('.webcam');
  const video = article.querySelector('.webcam-video');
  let stream = null;
  const stop = () => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    box.hidden = true;
  };
  article.querySelector('.webcam-start').addEventListener('click', async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (err) {
      article.querySelector('.upload-status').textContent = `Camera unavailable: ${err.message}`;
      return;
    }
    video.srcObject = stream;
    box.hidden = false;
  });
  article.querySelector('.webcam-stop').addEventListener('click', stop);
  article.querySelector('.webcam-capture').addEventListener('click', () => {
    if (!stream || !video.videoWidth) return;
    const canvas = el('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      if (blob) upload(article, [new File([blob], 'webcam.jpg', { type: 'image/jpeg' })]);
    }, 'image/jpeg', 0.92);
  });
});

// -- live lobby and room --

const liveBody = document.getElementById('live-participants');
const liveRecent = document.getElementById('live-recent');
const liveStatus = document.getElementById('live-status');
const hostStatus = document.getElementById('host-status');

// The gate's state in the owner's words (server/owner/words.py says the same).
const STATE_WORDS = {
  lobby: 'waiting',
  checking: 'being checked',
  challenge: 'doing the liveness check',
  failed: 'not let in, may try again',
  admitted: 'in the room',
  reverifying: 'verifying again',
  denied: 'refused',
  locked: 'locked out',
  left: 'left',
};

function since(ts) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min`;
}

function cell(label, text = '', props = {}) {
  return el('td', { 'data-label': label, ...props }, text);
}

function actionButton(text, label, onClick, extra = '') {
  const button = el('button', { type: 'button', class: `small ${extra}`.trim(), 'aria-label': label }, text);
  button.addEventListener('click', onClick);
  return button;
}

function render(snapshot) {
  liveBody.replaceChildren();
  if (!snapshot.participants.length) {
    const row = el('tr');
    row.append(el('td', { colspan: '6', class: 'muted' }, 'Nobody is here.'));
    liveBody.append(row);
  }
  snapshot.participants.forEach((p) => {
    const row = el('tr', { class: `state-${p.state}`, 'data-participant': p.id });
    row.append(cell('Name', p.name));
    let state = STATE_WORDS[p.state] || p.state;
    if (p.state === 'failed' && p.attempts_left !== undefined) {
      state += ` (${p.attempts_left} attempt${p.attempts_left === 1 ? '' : 's'} left)`;
    }
    row.append(cell('State', state, { class: 'state', title: p.state }));
    row.append(cell('Match distance', p.distance === null ? '–' : p.distance.toFixed(3)));
    row.append(cell('Since', since(p.since)));
    row.append(presenceCell(p));
    const actions = cell('Decide', '', { class: 'decide' });
    if (p.can_admit) {
      actions.append(actionButton('Let in…', `Let ${p.name} in`, () => openHostDialog(p), 'primary host-admit'));
    }
    if (p.failures > 0 && !p.can_send_to_lobby) {
      actions.append(actionButton('Give attempts back', `Give ${p.name} their attempts back`,
        () => decide(p, 'reset', ''), 'host-reset'));
    }
    if (p.can_send_to_lobby) {
      actions.append(actionButton('Back to lobby', `Send ${p.name} back to the lobby`,
        () => decide(p, 'lobby', ''), 'host-lobby'));
    }
    if (p.can_reverify) {
      actions.append(actionButton('Re-verify', `Ask ${p.name} to verify again`, () => askReverify(p.id), 'reverify'));
    }
    if (p.paused) actions.append(el('span', { class: 'muted small' }, ' media paused'));
    row.append(actions);
    liveBody.append(row);
  });
  liveRecent.replaceChildren();
  snapshot.recent.forEach((r) => {
    const text = `${r.text || r.event} · ${new Date(r.ts * 1000).toLocaleTimeString()}`;
    liveRecent.append(el('li', { class: r.event.replace('.', '-'), title: r.event, 'data-event': r.event }, text));
  });
}

// -- the host decides: let in (with a reason), send back to the lobby, give attempts back --

const dialog = document.getElementById('host-dialog');
const reasonInput = document.getElementById('host-reason');
const dialogError = document.getElementById('host-dialog-error');
let pending = null;

function openHostDialog(p) {
  pending = p;
  document.getElementById('host-dialog-title').textContent = `Let ${p.name} in`;
  document.getElementById('host-dialog-note').textContent = p.state === 'failed'
    ? `The check did not let ${p.name} in. You can let them in anyway: it is recorded as your decision.`
    : `${p.name} has not finished the check. You can let them in now: it is recorded as your decision.`;
  reasonInput.value = '';
  dialogError.textContent = '';
  dialog.showModal();
  reasonInput.focus();
}

document.getElementById('host-form').addEventListener('submit', (event) => {
  const choice = event.submitter ? event.submitter.value : 'confirm';
  if (choice !== 'confirm' || !pending) return;
  if (!reasonInput.value.trim()) {
    event.preventDefault();
    dialogError.textContent = 'Say why you let this person in: it is kept in the audit log.';
    reasonInput.focus();
    return;
  }
  decide(pending, 'admit', reasonInput.value);
});

async function decide(p, action, reason) {
  try {
    const response = await fetch(`/owner/rooms/${roomId}/host`, {
      method: 'POST',
      body: JSON.stringify({ participant_id: p.id, action, reason }),
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Accept: 'application/json' },
      credentials: 'same-origin',
    });
    const result = await response.json();
    hostStatus.textContent = result.message || `Could not do it (${response.status}).`;
  } catch (err) {
    hostStatus.textContent = `Could not do it: ${err}`;
  }
}

// -- certified presence: live flags and the host's "re-verify now" --

const FLAG_TEXT = {
  'presence.camera_off': 'camera off by the participant',
  'presence.lost': 'no face',
  'identity.mismatch': 'someone else',
  'extra.person': 'extra person',
  'presence.unverifiable': 'unverifiable (no keyframes)',
};

function presenceCell(p) {
  const cell = el('td', { class: 'presence', 'data-label': 'Presence' });
  const info = p.presence || { checks: 0, flags: [] };
  if (!info.checks) {
    cell.textContent = '–';
  } else {
    cell.textContent = `${Math.round(info.ratio * 100)} % of ${info.checks}`;
  }
  (info.flags || []).forEach((flag) => {
    cell.append(el('span', { class: `flag ${flag.replace('.', '-')}`, title: flag }, ` ⚠ ${FLAG_TEXT[flag] || flag}`));
  });
  return cell;
}

const reverifyStatus = document.getElementById('reverify-status');

async function askReverify(participantId) {
  const body = participantId ? { participant_id: participantId } : {};
  try {
    const response = await fetch(`/owner/rooms/${roomId}/reverify`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Accept: 'application/json' },
      credentials: 'same-origin',
    });
    const result = await response.json();
    reverifyStatus.textContent = response.ok
      ? `Asked ${result.asked.length} participant${result.asked.length === 1 ? '' : 's'} to verify again.`
      : `Could not ask (${response.status}).`;
  } catch (err) {
    reverifyStatus.textContent = `Could not ask: ${err}`;
  }
}

document.getElementById('reverify-all').addEventListener('click', () => askReverify(null));


function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/owner/rooms/${roomId}/live`);
  ws.onopen = () => { liveStatus.textContent = 'live'; };
  ws.onmessage = (event) => render(JSON.parse(event.data));
  ws.onclose = () => {
    liveStatus.textContent = 'reconnecting…';
    setTimeout(connect, 2000);
  };
}
connect();
