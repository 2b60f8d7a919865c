// party-sockets client for browsers and Node: one dependency-free ES module.
//
//   import { PartySocket } from "party-sockets-client";
//   const host = await PartySocket.create("https://my-app.fly.dev", { maxClients: 8, persist: true });
//   host.addEventListener("message", (e) => console.log(e.detail.from, e.detail.data));
//   const player = await PartySocket.join("https://my-app.fly.dev", "aB3xYz", { persist: true });
//   const again = await PartySocket.resume("https://my-app.fly.dev"); // after a page reload
//
// It reconnects by itself: exponential backoff with jitter, rejoining with
// the same clientId (so it keeps its slot), pinned to the room's machine
// with ?instance=. It asks for message recovery (unless { recover: false }):
// the server numbers this slot's frames ("seq") and, on a rejoin with the
// last one seen ("since"), sends again what was missed; duplicates are
// dropped, and "recovery_failed" says when the server no longer had them
// (the retained state follows: resync from it). With persist the last seq
// is saved with the clientId, so a reload recovers too. Close codes 4000
// (replaced) and 4001 (room closed) are final, as is a room that no longer
// exists; everything else retries. While the link is quiet it sends
// {"type":"ping"} once a heartbeat (3 s; the heartbeat option, 0 for none)
// and takes any frame as proof of life: when a ping has had no answer for
// a heartbeat it drops the socket and reconnects, as after any drop.
//
// Crash-proof rooms (unless { tickets: false }): it asks for the room's
// sealed ticket, keeps the freshest (with persist, saved as the clientId
// is) and the last state it saw or set. When its machine dies, the
// rejoin gets "Room not found": it then restores the room from the
// ticket and state on another machine ("restored"), joins the one another
// member restored, or says why it could not ("restore_failed"). Against a
// relay without tickets it behaves as before.
//
// It dials with the runtime's WebSocket (browsers, Node 22 and later), or
// with the class given as the WebSocket option: on Node 20, which has
// none without --experimental-websocket, the "ws" package's.

// The close codes the server sends: the same table as the Go package
// closecode (a test holds them together). final: stop; otherwise reconnect.
export const CLOSE_CODES = Object.freeze({
  4000: { reason: "replaced", final: true },
  4001: { reason: "room closed", final: true },
  4002: { reason: "too slow", final: false },
  1008: { reason: "", final: false },
  1009: { reason: "", final: false },
  1012: { reason: "server restarting", final: false },
  1013: { reason: "try again later", final: false },
});
// The server's answers to a rejoin that mean the saved room is gone for
// this client: resume returns null on them (a caller then creates or
// joins anew). "Too many failed joins" is what an address gets after
// rejoining gone rooms too often: waiting would only keep the page stuck.
// "Room is full": the slot this clientId held was given up.
export const ROOM_GONE = Object.freeze(["Room not found", "Too many failed joins, try again later", "Room is full"]);
// The server's answers to a restore that no retry changes: the ticket is
// dropped. "Room ended" also ends the client; after the others a member
// may still rebuild the room, so the client keeps rejoining for roomWait.
export const RESTORE_FAILED = Object.freeze(["Invalid ticket", "Ticket expired", "Not in this ticket", "Room ended", "Tickets are off"]);
// A ticket is at most 4096 bytes (docs/protocol.md): a longer one is
// no ticket, and is neither kept nor sent.
const MAX_TICKET = 4096;

const FINAL = Object.fromEntries(Object.entries(CLOSE_CODES).filter(([, c]) => c.final).map(([k, c]) => [k, c.reason]));

function wsBase(url) {
  const u = new URL(url, typeof location !== "undefined" ? location.href : undefined);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.origin.replace(/^http/, "ws") + u.pathname.replace(/\/+$/, "");
}

function httpBase(base) {
  return base.replace(/^ws/, "http");
}

// webSocketClass is the WebSocket class a client dials with, or throws
// naming the option when there is none.
function webSocketClass(opts) {
  const given = opts.WebSocket;
  if (given !== undefined && typeof given !== "function") {
    throw new TypeError("party-sockets: the WebSocket option must be a WebSocket class, such as the \"ws\" package's " +
      "(import { WebSocket } from \"ws\"); got a value of type " + typeof given);
  }
  const WS = given || globalThis.WebSocket;
  if (typeof WS !== "function") {
    throw new TypeError("party-sockets: this runtime has no WebSocket (Node 20 has one only with --experimental-websocket): " +
      "pass one as the WebSocket option, e.g. import { WebSocket } from \"ws\" and PartySocket.create(url, { WebSocket })");
  }
  return WS;
}

function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class PartySocket extends EventTarget {
  #WebSocket; // the class this client dials with

  /** @param {string} url @param {object} [opts] */
  constructor(url, opts = {}) {
    super();
    this.#WebSocket = webSocketClass(opts);
    this.base = wsBase(url);
    this.opts = {
      minBackoff: 250, maxBackoff: 10000, maxAttempts: 20, persist: false, recover: true,
      connectTimeout: 10000, roomWait: 10000, heartbeat: 3000, tickets: true, ...opts,
    };
    this.storageKey = this.opts.storageKey || "party-sockets:" + this.base;
    const saved = this.opts.persist ? PartySocket.saved(url, this.opts) : null;
    this.clientId = this.opts.clientId || (saved && saved.clientId) || randomId();
    // The last frame number of this slot seen; null until created/joined.
    // A reloaded page recovers from it, on top of the state saved with it.
    const same = saved && saved.clientId === this.clientId;
    this.seq = same && typeof saved.seq === "number" ? saved.seq : null;
    this.room = null;
    this.index = null;
    this.instance = null;
    this.state = same && this.seq !== null ? PartySocket.#savedState(this.storageKey) : undefined;
    // The room's freshest ticket, kept (with persist) as the clientId is.
    this.ticket = same && this.opts.tickets ? PartySocket.#savedTicket(this.storageKey) : null;
    // While the room is lost: "restore" (send the ticket), "join" (another
    // member restored it), or null (rejoin as usual).
    this.restoring = null;
    this.status = "idle"; // connecting, open, reconnecting, closed
    this.ws = null;
    this.attempt = 0;
    this.userClosed = false;
  }

  /** Create a room; resolves once the server answered created. */
  static async create(url, opts = {}) {
    const s = new PartySocket(url, opts);
    const msg = { type: "create", clientId: s.clientId, maxClients: opts.maxClients || 8 };
    if (opts.url) msg.url = opts.url;
    s.seq = null;
    s.state = undefined;
    s.#dropTicket();
    await s.#connect(s.base + "/", s.#withRecovery(msg));
    return s;
  }

  /** Join a room by its code alone (the relay routes /<code> to its machine). */
  static async join(url, code, opts = {}) {
    const s = new PartySocket(url, opts);
    const saved = s.opts.persist ? PartySocket.saved(url, opts) : null;
    if (saved && saved.room === code) s.instance = saved.instance || null;
    if (!(saved && saved.room === code)) {
      s.seq = null;
      s.state = undefined;
      s.#dropTicket();
    }
    s.room = code;
    try {
      await s.#connect(s.#rejoinURL(), s.#withRecovery({ type: "join", clientId: s.clientId, room: code }));
    } catch (err) {
      // A reloaded page whose room's machine died: restore it.
      if (err.serverMessage !== "Room not found" || !s.ticket) throw err;
      await s.#restoreNow(err);
    }
    return s;
  }

  // #restoreNow restores the lost room from the saved ticket, for join and
  // resume (no one listens for events yet: the outcome is the client, or
  // the rejection): "Try again" is retried for roomWait; it rejects with
  // notFound when the relay has no restore.
  async #restoreNow(notFound) {
    const until = Date.now() + this.opts.roomWait;
    this.instance = null;
    this.restoring = "restore";
    for (let d = Math.min(this.opts.minBackoff, 500); ; d = Math.min(2000, d * 1.5)) {
      try {
        return await this.#rejoinOnce();
      } catch (err) {
        const why = err.serverMessage;
        if (why === "Room exists") {
          this.restoring = "join";
          continue;
        }
        if (why === "Unknown message type") throw notFound; // the old relay: as before tickets
        if (why !== "Try again" && why !== "Room not found") {
          if (RESTORE_FAILED.includes(why)) this.#dropTicket();
          throw err;
        }
        if (Date.now() > until) throw err;
        this.restoring = this.ticket ? "restore" : "join";
      }
      await new Promise((r) => setTimeout(r, d));
    }
  }

  /**
   * Rejoin the room saved in localStorage (same clientId, same slot), or
   * null when there is none or it is gone: the server answered one of
   * ROOM_GONE (the room ended, or this address has missed too many rooms
   * to be let in). A gone room is forgotten, so the next reload does not
   * ask again. Anything else (no network, a refused handshake) throws.
   */
  static async resume(url, opts = {}) {
    webSocketClass(opts); // with none, say so rather than find no saved room
    const saved = PartySocket.saved(url, opts);
    if (!saved || !saved.room) return null;
    const again = { ...opts, persist: true, clientId: saved.clientId };
    for (let tries = 0; ; tries++) {
      try {
        return await PartySocket.join(url, saved.room, again);
      } catch (err) {
        if (!ROOM_GONE.includes(err.serverMessage) && !RESTORE_FAILED.includes(err.serverMessage)) throw err;
        // A room in a hand-off is not found for milliseconds: once more.
        if (err.serverMessage === "Room not found" && tries === 0) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        PartySocket.forget(url, opts);
        return null;
      }
    }
  }

  /** Forget the saved room, clientId, state and ticket for this relay. */
  static forget(url, opts = {}) {
    PartySocket.#forgetKey(opts.storageKey || "party-sockets:" + wsBase(url));
  }

  static #forgetKey(key) {
    try {
      localStorage.removeItem(key);
      localStorage.removeItem(key + ":state");
      localStorage.removeItem(key + ":ticket");
    } catch {}
  }

  static #savedTicket(key) {
    try {
      const t = localStorage.getItem(key + ":ticket");
      return typeof t === "string" && t.length > 0 && t.length <= MAX_TICKET ? t : null;
    } catch {
      return null;
    }
  }

  static #savedState(key) {
    try {
      const raw = localStorage.getItem(key + ":state");
      return raw === null ? undefined : JSON.parse(raw);
    } catch {
      return undefined;
    }
  }

  /** The saved { clientId, room, instance, seq } for this relay, or null. */
  static saved(url, opts = {}) {
    try {
      const raw = localStorage.getItem(opts.storageKey || "party-sockets:" + wsBase(url));
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  send(data) {
    return this.#write(data === undefined ? { type: "send" } : { type: "send", data });
  }
  sendTo(slot, data) {
    return this.#write({ type: "send", data, to: slot });
  }
  setState(data) {
    if (!this.#write({ type: "set_state", data })) return false;
    // The server sends the state to the others only: this is the last
    // state this client saw, for a restore. A copy, as sent: the game may
    // change its object afterwards, and the ticket holds the sent one.
    this.#keepState(data === undefined ? undefined : JSON.parse(JSON.stringify(data)));
    return true;
  }
  closeRoom() {
    return this.#write({ type: "close_room" });
  }

  /** Leave for good (no reconnect). */
  close() {
    this.userClosed = true;
    this.#dropTicket(); // left: this client restores nothing
    clearInterval(this.beat);
    if (this.ws) this.ws.close(1000);
    this.#finish({ code: 1000, reason: "closed by the client", final: false });
  }

  /** A create, join or restore asking for recovery, and since the last seq seen (a restore into a room that is there already replays what was missed). */
  #withRecovery(msg) {
    if (this.opts.tickets) msg.tickets = true;
    if (!this.opts.recover) return msg;
    msg.recover = true;
    if ((msg.type === "join" || msg.type === "restore") && this.seq !== null) msg.since = this.seq;
    return msg;
  }

  #write(msg) {
    if (!this.ws || this.ws.readyState !== 1) return false; // not sent: the caller knows
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  #keepState(data) {
    this.state = data;
    if (!this.opts.persist) return;
    try {
      localStorage.setItem(this.storageKey + ":state", JSON.stringify(data));
    } catch {}
  }

  #keepTicket(t) {
    if (typeof t !== "string" || t.length === 0 || t.length > MAX_TICKET) return;
    this.ticket = t;
    if (!this.opts.persist) return;
    try {
      localStorage.setItem(this.storageKey + ":ticket", t);
    } catch {}
  }

  #dropTicket() {
    this.ticket = null;
    if (!this.opts.persist) return;
    try {
      localStorage.removeItem(this.storageKey + ":ticket");
    } catch {}
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #save() {
    if (!this.opts.persist) return;
    try {
      localStorage.setItem(
        this.storageKey,
        JSON.stringify({ clientId: this.clientId, room: this.room, instance: this.instance, seq: this.seq }),
      );
    } catch {}
  }

  #rejoinURL() {
    let u = this.base + "/" + encodeURIComponent(this.room);
    if (this.instance) u += "?instance=" + encodeURIComponent(this.instance);
    return u;
  }

  #connect(url, first) {
    this.status = this.attempt ? "reconnecting" : "connecting";
    return new Promise((resolve, reject) => {
      const ws = new this.#WebSocket(url);
      // The close event that follows an error says what happened; with the
      // "ws" package an error nobody listens to would throw instead.
      ws.onerror = () => {};
      let settled = false;
      // A connect that neither opens nor answers (a dead network, a
      // machine that hangs) fails after connectTimeout, and is retried.
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.onclose = null;
        ws.close();
        reject(new Error("connect timeout after " + this.opts.connectTimeout + " ms"));
      }, this.opts.connectTimeout);
      ws.onopen = () => ws.send(JSON.stringify(first));
      ws.onmessage = (e) => {
        this.heard = Date.now(); // any frame is proof that the link is alive
        let m;
        try {
          m = JSON.parse(e.data);
        } catch {
          return;
        }
        if (this.#heartbeatAnswer(m)) return;
        if (!settled) {
          if (m.type === "error") {
            settled = true;
            clearTimeout(timer);
            ws.onclose = null;
            ws.close();
            reject(Object.assign(new Error(m.message), { serverMessage: m.message }));
            return;
          }
          if (m.type !== "created" && m.type !== "joined") return;
          settled = true;
          // This connect ends a lost room: rebuilt by this client or another.
          const restored = m.type === "joined" && (this.restoring !== null || m.rebuilt === true); // rebuilt: back in a room another member rebuilt
          this.restoring = null;
          clearTimeout(timer);
          if (typeof m.seq === "number") {
            // After a complete recovery the frames that follow carry the
            // numbers up to m.seq; otherwise start over from it.
            if (m.recovered === false) this.#emit("recovery_failed", { since: this.seq, latest: m.seq });
            if (m.recovered !== true) this.seq = m.seq;
          }
          this.ws = ws;
          this.status = "open";
          this.attempt = 0;
          this.room = m.room;
          this.index = m.index;
          if (m.type === "created") this.instance = m.instance || null;
          this.#save();
          if (m.type === "joined" && !this.instance) this.#learnInstance();
          this.#watch(ws);
          resolve(this);
          this.#onMessage(m);
          if (restored) this.#emit("restored", { room: m.room, index: m.index, rebuilt: m.restored === true });
          return;
        }
        this.#onMessage(m);
      };
      ws.onclose = (e) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error("connection failed (" + e.code + ")"));
          return;
        }
        this.#lost(e.code, e.reason);
      };
    });
  }

  // #watch pings ws while the link is quiet, at most once a heartbeat, and
  // ends it as dead when a ping has had no answer, nor any other frame, for
  // a heartbeat: about two heartbeats of silence. A black-holed network
  // sends no close and no reset, and a browser cannot send WebSocket pings.
  // The client then reconnects as after any drop. Dead is judged from the
  // ping, not from the silence alone: a background tab whose timers the
  // browser held back for a minute is not dead for that.
  #watch(ws) {
    clearInterval(this.beat);
    const every = this.opts.heartbeat;
    if (!(every > 0)) return;
    this.heard = Date.now();
    this.pinged = 0;
    this.pingsOut = 0;
    this.beat = setInterval(() => {
      if (this.ws !== ws) return clearInterval(this.beat);
      const now = Date.now();
      if (this.heard < this.pinged && now - this.pinged >= every) {
        ws.onclose = null;
        ws.onmessage = null;
        ws.close();
        this.#lost(1006, "no answer for " + (now - this.heard) + " ms");
      } else if (now - this.heard >= every && now - this.pinged >= every) {
        this.pinged = now;
        this.pingsOut++;
        ws.send('{"type":"ping"}');
      }
    }, every / 4);
    // A timer alone must not keep Node running.
    if (typeof this.beat === "object" && this.beat.unref) this.beat.unref();
  }

  // #heartbeatAnswer reports whether m answers a ping: a pong, or the old
  // relay's "Unknown message type" while a ping is unanswered. Neither is
  // the game's business.
  #heartbeatAnswer(m) {
    if (m.type === "pong") {
      this.pingsOut = 0;
      return true;
    }
    if (m.type === "error" && m.message === "Unknown message type" && this.pingsOut > 0) {
      this.pingsOut--;
      return true;
    }
    return false;
  }

  async #learnInstance() {
    try {
      const r = await fetch(httpBase(this.base) + "/room/" + encodeURIComponent(this.room));
      const id = r.ok && r.headers.get("X-Instance-Id");
      if (id) {
        this.instance = id;
        this.#save();
      }
    } catch {}
  }

  #onMessage(m) {
    if (typeof m.seq === "number" && m.type !== "created" && m.type !== "joined") {
      if (this.seq !== null && m.seq <= this.seq) return; // seen before the reconnect
      this.seq = m.seq;
      this.#save();
    }
    switch (m.type) {
      case "created":
      case "joined":
        this.#emit(m.type, m);
        break;
      case "peer_joined":
      case "peer_left":
        this.#emit(m.type, { index: m.index });
        break;
      case "message":
        this.#emit("message", "data" in m ? { from: m.from, data: m.data } : { from: m.from });
        break;
      case "state":
        this.#keepState(m.data);
        this.#emit("state", { data: m.data });
        break;
      case "ticket":
        this.#keepTicket(m.ticket); // the client's business, not the game's
        break;
      case "error":
        // The answers to the tickets this client asked for by default: no
        // ticket now (the relay has no HANDOFF_SECRET, or the room is too
        // large for one). Neither is the game's business.
        if (m.message === "Tickets are off") this.#dropTicket();
        if (m.message === "Tickets are off" || m.message === "Room too large for a ticket") break;
        this.#emit("error", { message: m.message });
        break;
    }
  }

  #lost(code, reason) {
    this.ws = null;
    this.pingsOut = 0;
    clearInterval(this.beat);
    if (this.userClosed || this.status === "closed") return;
    if (FINAL[code]) {
      this.#finish({ code, reason: FINAL[code], final: true });
      return;
    }
    // 1001 (Fly's proxy) or 1012 (the server): the machine is stopping and
    // hands its room to a sibling, so the pin is stale.
    if (code === 1001 || code === 1012) this.instance = null;
    this.lostAt = Date.now();
    this.roomDelay = 0;
    this.#retry(code);
  }

  // #retry reconnects after a backoff that doubles with each attempt, or
  // after d ms when given.
  #retry(code, d) {
    if (this.opts.maxAttempts >= 0 && this.attempt >= this.opts.maxAttempts) {
      this.#finish({ code, reason: "gave up after " + this.attempt + " attempts", final: false });
      return;
    }
    this.attempt++;
    d ??= Math.min(this.opts.maxBackoff, this.opts.minBackoff * 2 ** (this.attempt - 1));
    const delay = d / 2 + Math.random() * (d / 2);
    this.status = "reconnecting";
    this.#emit("reconnecting", { attempt: this.attempt, delay, code });
    setTimeout(() => {
      if (this.userClosed) return;
      this.#rejoinOnce().catch((err) => this.#rejoinFailed(err.serverMessage));
    }, delay);
  }

  // #rejoinOnce connects again: a join, or while the room is lost and a
  // ticket is held, a restore with it and the last state, to /<code>.
  #rejoinOnce() {
    if (this.restoring !== "restore" || !this.ticket) {
      const join = { type: "join", clientId: this.clientId, room: this.room };
      // A room rebuilt from another member's older ticket moves up to
      // ours first: we take back our own slot, not a fresh index.
      if (this.ticket) join.ticket = this.ticket;
      return this.#connect(this.#rejoinURL(), this.#withRecovery(join));
    }
    const msg = { type: "restore", clientId: this.clientId, ticket: this.ticket };
    if (this.state !== undefined) msg.state = this.state;
    return this.#connect(this.#rejoinURL(), this.#withRecovery(msg));
  }

  // #rejoinFailed decides what follows a rejoin the server refused with
  // why (undefined: no answer at all).
  #rejoinFailed(why) {
    if (this.userClosed || this.status === "closed") return;
    if (this.restoring === "restore") {
      if (why === "Room exists") {
        this.restoring = "join"; // another member restored it: join it, now
        return this.#retry(0, 0);
      }
      if (why === "Unknown message type") {
        this.restoring = null; // the old relay has no restore: as before tickets
        this.#dropTicket();
        return this.#roomMissing(why);
      }
      if (RESTORE_FAILED.includes(why)) {
        this.restoring = null;
        this.#dropTicket();
        this.#emit("restore_failed", { message: why });
        if (why === "Room ended") return this.#finish({ code: 0, reason: "room ended", final: true });
        return this.#roomMissing(why); // another member may rebuild it
      }
      if (why === "Try again") return this.#roomMissing(why);
    }
    if (why !== "Room not found") return this.#retry(0);
    // The room's machine died (a restore follows), or a room being handed
    // to another machine is not found for a moment. A restore has roomWait
    // from its first try, however long the link was down before.
    if (this.ticket && this.restoring !== "restore") this.lostAt = Date.now();
    this.restoring = this.ticket ? "restore" : this.restoring && "join";
    this.#roomMissing(why);
  }

  // #roomMissing tries again by code (no pin) until roomWait has passed.
  #roomMissing(why) {
    if (Date.now() - this.lostAt > this.opts.roomWait) {
      if (this.restoring === "restore") this.#emit("restore_failed", { message: why });
      this.#finish({ code: 0, reason: "room not found", final: true });
      return;
    }
    // Quick first (a hand-off takes milliseconds), then half as long
    // again each time, up to one try every 2 s: a room that is really
    // gone costs the address few misses.
    this.instance = null;
    this.attempt = 0;
    this.roomDelay = Math.min(2000, this.roomDelay ? this.roomDelay * 1.5 : Math.min(this.opts.minBackoff, 500));
    this.#retry(0, this.roomDelay);
  }

  #finish(detail) {
    if (this.status === "closed") return;
    this.status = "closed";
    this.restoring = null;
    if (detail.final) {
      this.ticket = null; // the room ended: nothing to restore
      if (this.opts.persist) PartySocket.#forgetKey(this.storageKey);
    }
    this.#emit("closed", detail);
  }
}
