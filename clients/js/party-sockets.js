// party-sockets browser client: one dependency-free ES module.
//
//   import { PartySocket } from "./party-sockets.js";
//   const host = await PartySocket.create("https://my-app.fly.dev", { maxClients: 8, persist: true });
//   host.addEventListener("message", (e) => console.log(e.detail.from, e.detail.data));
//   const player = await PartySocket.join("https://my-app.fly.dev", "aB3xYz", { persist: true });
//   const again = await PartySocket.resume("https://my-app.fly.dev"); // after a page reload
//
// It reconnects by itself: exponential backoff with jitter, rejoining with
// the same clientId (so it keeps its slot), pinned to the room's machine
// with ?instance=, and the server replays the retained state. Close codes
// 4000 (replaced) and 4001 (room closed) are final, as is a room that no
// longer exists; everything else retries.

const FINAL = { 4000: "replaced", 4001: "room closed" };

function wsBase(url) {
  const u = new URL(url, typeof location !== "undefined" ? location.href : undefined);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.origin.replace(/^http/, "ws") + u.pathname.replace(/\/+$/, "");
}

function httpBase(base) {
  return base.replace(/^ws/, "http");
}

function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class PartySocket extends EventTarget {
  /** @param {string} url @param {object} [opts] */
  constructor(url, opts = {}) {
    super();
    this.base = wsBase(url);
    this.opts = { minBackoff: 250, maxBackoff: 10000, maxAttempts: 20, persist: false, ...opts };
    this.storageKey = this.opts.storageKey || "party-sockets:" + this.base;
    const saved = this.opts.persist ? PartySocket.saved(url, this.opts) : null;
    this.clientId = this.opts.clientId || (saved && saved.clientId) || randomId();
    this.room = null;
    this.index = null;
    this.instance = null;
    this.state = undefined;
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
    await s._connect(s.base + "/", msg);
    return s;
  }

  /** Join a room by its code alone (the relay routes /<code> to its machine). */
  static async join(url, code, opts = {}) {
    const s = new PartySocket(url, opts);
    const saved = s.opts.persist ? PartySocket.saved(url, opts) : null;
    if (saved && saved.room === code) s.instance = saved.instance || null;
    s.room = code;
    await s._connect(s._rejoinURL(), { type: "join", clientId: s.clientId, room: code });
    return s;
  }

  /** Rejoin the room saved in localStorage (same clientId, same slot), or null. */
  static async resume(url, opts = {}) {
    const saved = PartySocket.saved(url, opts);
    if (!saved || !saved.room) return null;
    return PartySocket.join(url, saved.room, { ...opts, persist: true, clientId: saved.clientId });
  }

  /** The saved { clientId, room, instance } for this relay, or null. */
  static saved(url, opts = {}) {
    try {
      const raw = localStorage.getItem(opts.storageKey || "party-sockets:" + wsBase(url));
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  send(data) {
    return this._write(data === undefined ? { type: "send" } : { type: "send", data });
  }
  sendTo(slot, data) {
    return this._write({ type: "send", data, to: slot });
  }
  setState(data) {
    return this._write({ type: "set_state", data });
  }
  closeRoom() {
    return this._write({ type: "close_room" });
  }

  /** Leave for good (no reconnect). */
  close() {
    this.userClosed = true;
    if (this.ws) this.ws.close(1000);
    this._finish({ code: 1000, reason: "closed by the client", final: false });
  }

  /** For tests: drop the socket as a network failure would (reconnects). */
  _dropForTest() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this._lost(1006);
    }
  }

  _write(msg) {
    if (!this.ws || this.ws.readyState !== 1) return false; // not sent: the caller knows
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _save() {
    if (!this.opts.persist) return;
    try {
      localStorage.setItem(this.storageKey, JSON.stringify({ clientId: this.clientId, room: this.room, instance: this.instance }));
    } catch {}
  }

  _rejoinURL() {
    let u = this.base + "/" + encodeURIComponent(this.room);
    if (this.instance) u += "?instance=" + encodeURIComponent(this.instance);
    return u;
  }

  _connect(url, first) {
    this.status = this.attempt ? "reconnecting" : "connecting";
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      let settled = false;
      ws.onopen = () => ws.send(JSON.stringify(first));
      ws.onmessage = (e) => {
        let m;
        try {
          m = JSON.parse(e.data);
        } catch {
          return;
        }
        if (!settled) {
          if (m.type === "error") {
            settled = true;
            ws.onclose = null;
            ws.close();
            reject(Object.assign(new Error(m.message), { serverMessage: m.message }));
            return;
          }
          if (m.type !== "created" && m.type !== "joined") return;
          settled = true;
          this.ws = ws;
          this.status = "open";
          this.attempt = 0;
          this.room = m.room;
          this.index = m.index;
          if (m.type === "created") this.instance = m.instance || null;
          this._save();
          if (m.type === "joined" && !this.instance) this._learnInstance();
          resolve(this);
        }
        this._onMessage(m);
      };
      ws.onclose = (e) => {
        if (!settled) {
          settled = true;
          reject(new Error("connection failed (" + e.code + ")"));
          return;
        }
        this._lost(e.code, e.reason);
      };
    });
  }

  async _learnInstance() {
    try {
      const r = await fetch(httpBase(this.base) + "/room/" + encodeURIComponent(this.room));
      const id = r.ok && r.headers.get("X-Instance-Id");
      if (id) {
        this.instance = id;
        this._save();
      }
    } catch {}
  }

  _onMessage(m) {
    switch (m.type) {
      case "created":
      case "joined":
        this._emit(m.type, m);
        break;
      case "peer_joined":
      case "peer_left":
        this._emit(m.type, { index: m.index });
        break;
      case "message":
        this._emit("message", "data" in m ? { from: m.from, data: m.data } : { from: m.from });
        break;
      case "state":
        this.state = m.data;
        this._emit("state", { data: m.data });
        break;
      case "error":
        this._emit("error", { message: m.message });
        break;
    }
  }

  _lost(code, reason) {
    this.ws = null;
    if (this.userClosed || this.status === "closed") return;
    if (FINAL[code]) {
      this._finish({ code, reason: FINAL[code], final: true });
      return;
    }
    this._retry(code);
  }

  _retry(code) {
    if (this.opts.maxAttempts >= 0 && this.attempt >= this.opts.maxAttempts) {
      this._finish({ code, reason: "gave up after " + this.attempt + " attempts", final: false });
      return;
    }
    this.attempt++;
    const d = Math.min(this.opts.maxBackoff, this.opts.minBackoff * 2 ** (this.attempt - 1));
    const delay = d / 2 + Math.random() * (d / 2);
    this.status = "reconnecting";
    this._emit("reconnecting", { attempt: this.attempt, delay, code });
    setTimeout(() => {
      if (this.userClosed) return;
      this._connect(this._rejoinURL(), { type: "join", clientId: this.clientId, room: this.room }).catch((err) => {
        if (err.serverMessage === "Room not found") this._finish({ code: 0, reason: "room not found", final: true });
        else this._retry(0);
      });
    }, delay);
  }

  _finish(detail) {
    if (this.status === "closed") return;
    this.status = "closed";
    if (detail.final && this.opts.persist) {
      try {
        localStorage.removeItem(this.storageKey);
      } catch {}
    }
    this._emit("closed", detail);
  }
}
