// A small client of the Janus HTTP API (VideoRoom, multistream), for rooms whose media
// Janus forwards (docs/janus.md). No build step, no janus.js: one session, a publisher
// handle that enters the room once with the pass the gate sent (`janus` message), and
// a subscriber handle that receives everyone else. room.js calls joinJanus on `janus`,
// janusTracks while drawing tiles, and leaveJanus when the session ends.

let current = null; // the live Janus session, or null

const tracksByPeer = new Map(); // display (our participant id) -> MediaStreamTrack[]

export function janusTracks(peerId) {
  return tracksByPeer.get(peerId) || [];
}

export function janusState() {
  return current ? current.state : "off";
}

function transaction() {
  return Math.random().toString(36).slice(2, 12);
}

class JanusSession {
  constructor(pass, localStream, iceServers, onChange) {
    this.pass = pass;
    this.url = pass.url.replace(/\/$/, "");
    this.localStream = localStream;
    this.iceServers = iceServers;
    this.onChange = onChange;
    this.session = null;
    this.pub = null; // publisher handle id
    this.sub = null; // subscriber handle id
    this.pubPc = null;
    this.subPc = null;
    this.privateId = null;
    this.subscribed = new Set(); // feeds we subscribe to
    this.midToPeer = new Map();
    this.waiting = new Map(); // handle -> resolve for the next plugin event
    this.closed = false;
    this.state = "connecting";
    this.keepalive = null;
  }

  // Requests go as text/plain (a "simple" cross-origin request, no preflight);
  // Janus reads the JSON body whatever its type.
  async post(path, body) {
    const response = await fetch(this.url + path, {
      method: "POST",
      body: JSON.stringify({ transaction: transaction(), ...body }),
    });
    const reply = await response.json();
    if (reply.janus === "error") throw new Error(`janus: ${reply.error.reason}`);
    return reply;
  }

  // The plugin answers asynchronously, as an event on the long poll: the first event
  // on ``handle`` that ``accept`` takes (or an error) is the reply.
  async message(handle, body, jsep, accept) {
    const payload = { janus: "message", body };
    if (jsep) payload.jsep = jsep;
    const next = new Promise((resolve) => this.waiting.set(handle, { resolve, accept }));
    await this.post(`/${this.session}/${handle}`, payload);
    return next;
  }

  async start() {
    this.session = (await this.post("", { janus: "create" })).data.id;
    this.poll();
    this.keepalive = setInterval(() => {
      this.post(`/${this.session}`, { janus: "keepalive" }).catch(() => {});
    }, 25000);
    this.pub = (await this.post(`/${this.session}`, {
      janus: "attach", plugin: "janus.plugin.videoroom",
    })).data.id;
    const joined = await this.message(this.pub, {
      request: "join", ptype: "publisher", room: this.pass.room, id: this.pass.feed,
      display: this.pass.display, token: this.pass.token,
    }, null, (m) => m.data.videoroom === "joined");
    if (joined.data.videoroom !== "joined") {
      throw new Error(joined.data.error || "the media server refused the pass");
    }
    this.privateId = joined.data.private_id;
    await this.publish();
    this.state = "connected";
    await this.subscribe(joined.data.publishers || []);
  }

  async publish() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pubPc = pc;
    for (const track of this.localStream.getTracks()) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [this.localStream] });
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const reply = await this.message(this.pub, { request: "publish" },
      { type: "offer", sdp: pc.localDescription.sdp }, (m) => Boolean(m.jsep));
    if (!reply.jsep) throw new Error(reply.data.error || "publish refused");
    await pc.setRemoteDescription(reply.jsep);
  }

  subscribe(publishers) {
    // One subscription change at a time: the first creates the subscriber handle.
    this.subQueue = (this.subQueue || Promise.resolve())
      .then(() => this.subscribeNow(publishers))
      .catch((err) => console.warn("janus subscribe", err));
    return this.subQueue;
  }

  async subscribeNow(publishers) {
    const feeds = publishers.map((p) => p.id).filter((id) => !this.subscribed.has(id));
    if (!feeds.length) return;
    for (const id of feeds) this.subscribed.add(id);
    const streams = feeds.map((feed) => ({ feed }));
    if (this.sub === null) {
      this.sub = (await this.post(`/${this.session}`, {
        janus: "attach", plugin: "janus.plugin.videoroom",
      })).data.id;
      // require_pvtid: subscriptions name our own publisher's private id.
      const attached = await this.message(this.sub, {
        request: "join", ptype: "subscriber", room: this.pass.room,
        private_id: this.privateId, streams,
      }, null, (m) => m.data.videoroom === "attached");
      await this.answer(attached);
    } else {
      await this.post(`/${this.session}/${this.sub}`, {
        janus: "message", body: { request: "subscribe", streams },
      });
    }
  }

  async answer(event) {
    // Every offer on the subscriber handle (attached, updated) gets an answer + start.
    this.noteStreams(event.data.streams);
    if (!event.jsep) return;
    if (this.subPc === null) {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      this.subPc = pc;
      pc.ontrack = (ev) => this.onTrack(ev);
    }
    const pc = this.subPc;
    await pc.setRemoteDescription(event.jsep);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await this.post(`/${this.session}/${this.sub}`, {
      janus: "message", body: { request: "start" },
      jsep: { type: "answer", sdp: pc.localDescription.sdp },
    });
  }

  noteStreams(streams) {
    if (!Array.isArray(streams)) return;
    for (const s of streams) {
      if (s.mid !== undefined && s.feed_display) this.midToPeer.set(String(s.mid), s.feed_display);
    }
  }

  onTrack(ev) {
    const peer = this.midToPeer.get(String(ev.transceiver.mid));
    if (!peer) return;
    const list = (tracksByPeer.get(peer) || []).filter((t) => t.kind !== ev.track.kind);
    list.push(ev.track);
    tracksByPeer.set(peer, list);
    ev.track.addEventListener("ended", () => this.dropTrack(peer, ev.track));
    this.onChange();
  }

  dropTrack(peer, track) {
    const list = (tracksByPeer.get(peer) || []).filter((t) => t !== track);
    if (list.length) tracksByPeer.set(peer, list); else tracksByPeer.delete(peer);
    this.onChange();
  }

  async poll() {
    while (!this.closed) {
      let events;
      try {
        const response = await fetch(`${this.url}/${this.session}?maxev=10&rid=${Date.now()}`);
        events = await response.json();
      } catch (err) {
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      for (const event of Array.isArray(events) ? events : [events]) this.onEvent(event);
    }
  }

  onEvent(event) {
    if (event.janus === "event" && event.plugindata) {
      const data = event.plugindata.data;
      const message = { data, jsep: event.jsep };
      const waiter = this.waiting.get(event.sender);
      if (waiter && (data.error_code || waiter.accept(message))) {
        this.waiting.delete(event.sender);
        waiter.resolve(message);
        return;
      }
      if (event.sender === this.sub && (event.jsep || data.streams)) {
        this.answer(message).catch((err) => console.warn("janus subscribe", err));
      }
      if (event.sender === this.pub) {
        if (data.leaving === "ok" || data.error_code) {
          // Kicked (removed by the gate) or refused: this session's room media ends.
          this.end("removed");
          return;
        }
        if (Array.isArray(data.publishers)) this.subscribe(data.publishers);
        const gone = data.unpublished || data.leaving;
        if (gone !== undefined) this.subscribed.delete(gone);
      }
    } else if (event.janus === "hangup" && event.sender === this.pub) {
      this.end("removed");
    }
  }

  end(state) {
    if (this.closed) return;
    this.closed = true;
    this.state = state;
    clearInterval(this.keepalive);
    for (const pc of [this.pubPc, this.subPc]) if (pc) pc.close();
    tracksByPeer.clear();
    if (this.session !== null) {
      this.post(`/${this.session}`, { janus: "destroy" }).catch(() => {});
    }
    this.onChange();
  }
}

function gathered(pc) {
  // Janus is configured for half-trickle here: the SDP carries every candidate.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // enough candidates by then; never hang the join
  });
}

// A pass from the gate: leave any earlier Janus session, enter with this one.
export async function joinJanus(pass, localStream, iceServers, onChange) {
  leaveJanus();
  const session = new JanusSession(pass, localStream, iceServers, onChange);
  current = session;
  window.__vgjanus = session; // read by tests (tests/e2e/test_janus_browser.py)
  try {
    await session.start();
  } catch (err) {
    session.end("failed");
    throw err;
  }
  onChange();
}

export function leaveJanus() {
  if (current) current.end("left");
  current = null;
}
