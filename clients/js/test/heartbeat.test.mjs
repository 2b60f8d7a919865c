// Issue 25, items 1 and 2 under Node's test runner: resume returns null
// when the saved room is gone, and the heartbeat notices a black-holed
// link (no close, no reset) and reconnects. Against real servers, as
// client.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { WebSocketServer } from "ws";
import { PartySocket, ROOM_GONE } from "../party-sockets.js";
import { serverBinary } from "./server.mjs";

const built = serverBinary();
const procs = [];
let relay, strict;

// startRelay runs the server with env and resolves with its URL.
function startRelay(env = {}) {
  const proc = spawn(built.bin, [], { env: { ...process.env, HOST: "127.0.0.1", PORT: "0", ...env }, stdio: ["ignore", "ignore", "pipe"] });
  procs.push(proc);
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stderr.on("data", (d) => {
      const m = (buf += d).match(/msg=listening addr=(\S+)/);
      if (m) resolve("http://" + m[1]);
    });
    proc.on("exit", (code) => reject(new Error("server exited " + code)));
  });
}

// Node 20 has no localStorage: a Map stands in, as a browser's would.
const store = new Map();
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

before(async () => {
  // strict: one missed room a minute per address, so the second miss is
  // "Too many failed joins, try again later".
  [relay, strict] = await Promise.all([startRelay(), startRelay({ JOIN_MISSES_PER_MIN: "1" })]);
});
after(() => {
  for (const p of procs) p.kill("SIGKILL");
  built.cleanup();
});

const next = (s, type) => new Promise((resolve) => s.addEventListener(type, (e) => resolve(e.detail), { once: true }));
const until = (cond, ms = 5000) => new Promise((resolve, reject) => {
  const start = Date.now();
  const t = setInterval(() => {
    if (cond()) { clearInterval(t); resolve(); } else if (Date.now() - start > ms) { clearInterval(t); reject(new Error("timed out")); }
  }, 10);
});

test("resume returns null when the saved room was closed, forgets it, and create makes a fresh room", async () => {
  store.clear();
  const host = await PartySocket.create(relay, { maxClients: 4, persist: true });
  const code = host.room;
  assert.equal(PartySocket.saved(relay).room, code);
  const player = await PartySocket.join(relay, code);
  const closed = next(player, "closed");
  // The saved room ends while this page is away: a second tab of the
  // same host closes it (the first is replaced, 4000), as close_room or
  // the host grace running out would.
  const other = await PartySocket.resume(relay);
  other.closeRoom();
  assert.equal((await closed).code, 4001);
  // The page comes back with the saved room: null, not a throw.
  store.set("party-sockets:" + relay.replace("http", "ws"), JSON.stringify({ clientId: host.clientId, room: code, instance: null, seq: 0 }));
  const again = await PartySocket.resume(relay, { persist: true });
  assert.equal(again, null);
  assert.equal(PartySocket.saved(relay), null, "the gone room is still saved");
  const fresh = (await PartySocket.resume(relay, { persist: true })) || (await PartySocket.create(relay, { persist: true }));
  assert.match(fresh.room, /^[1-9A-HJ-NP-Za-km-z]{6}$/);
  assert.notEqual(fresh.room, code);
  fresh.close();
  host.close();
  other.close();
});

test("resume returns null on the too-many-misses answer too, and still throws on a dead relay", async () => {
  store.clear();
  const key = "party-sockets:" + strict.replace("http", "ws");
  store.set(key, JSON.stringify({ clientId: "c1", room: "gone11", instance: null }));
  const answers = [];
  class Watching extends globalThis.WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (e) => answers.push(JSON.parse(e.data).message));
    }
  }
  assert.equal(await PartySocket.resume(strict, { WebSocket: Watching }), null);
  // The first try misses; the second, 500 ms later, is refused for it.
  assert.deepEqual(answers, ["Room not found", "Too many failed joins, try again later"]);
  assert.ok(ROOM_GONE.includes(answers[1]));
  assert.equal(store.has(key), false);

  const dead = net.createServer();
  await new Promise((r) => dead.listen(0, "127.0.0.1", r));
  const url = "http://127.0.0.1:" + dead.address().port;
  await new Promise((r) => dead.close(r)); // nothing listens there now
  store.set("party-sockets:" + url.replace("http", "ws"), JSON.stringify({ clientId: "c2", room: "abcdef", instance: null }));
  await assert.rejects(PartySocket.resume(url, { connectTimeout: 1000 }), /connection failed|connect timeout/);
});

// blackhole is a network that stops forwarding on command and closes
// nothing: what it receives meanwhile is held (a real black hole's TCP
// retransmits), new connections hang. release lets it all through.
function blackhole(target) {
  let holed = false;
  const held = [];
  const port = Number(new URL(target).port);
  const srv = net.createServer((c) => {
    const up = net.connect(port, "127.0.0.1");
    const fwd = (to) => (d) => (holed ? held.push([to, d]) : to.write(d));
    c.on("data", fwd(up));
    up.on("data", fwd(c));
    const end = () => { c.destroy(); up.destroy(); };
    c.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve({
    url: "http://127.0.0.1:" + srv.address().port,
    hole: () => { holed = true; },
    release: () => { holed = false; for (const [to, d] of held.splice(0)) if (!to.destroyed) to.write(d); },
    close: () => srv.close(),
  })));
}

test("a black-holed link is noticed within two heartbeats and the client rejoins its slot", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  const hole = await blackhole(relay);
  const player = await PartySocket.join(hole.url, host.room, { heartbeat: 300, connectTimeout: 500, minBackoff: 50, maxBackoff: 200 });
  const errors = [];
  player.addEventListener("error", (e) => errors.push(e.detail.message));
  // Idle but alive: pings keep it open, and their pongs are no events.
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(player.status, "open");
  const reconnecting = next(player, "reconnecting");
  const start = Date.now();
  hole.hole();
  const r = await reconnecting;
  const took = Date.now() - start;
  assert.equal(r.code, 1006);
  assert.ok(took >= 300 && took < 2000, "dead link noticed after " + took + " ms (heartbeat 300)");
  assert.equal(player.send("lost?"), false, "a send on the dead link was taken");
  hole.release();
  const j = await next(player, "joined");
  assert.equal(j.index, 1);
  const got = next(host, "message");
  assert.equal(player.send("back"), true);
  assert.deepEqual(await got, { from: 1, data: "back" });
  assert.deepEqual(errors, []);
  host.close();
  player.close();
  hole.close();
});

// The old relay answers a ping with "Unknown message type": that is proof
// of life too, and no error event for the game.
test("against the old relay, the answer to a ping is proof of life, not an error", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.on("listening", r));
  let pings = 0;
  wss.on("connection", (ws) => ws.on("message", (raw) => {
    const m = JSON.parse(raw);
    if (m.type === "create") return ws.send(JSON.stringify({ type: "created", room: "Old123", instance: "", region: "", index: 0 }));
    if (m.type === "ping") pings++;
    ws.send(JSON.stringify({ type: "error", message: "Unknown message type" }));
  }));
  const host = await PartySocket.create("http://127.0.0.1:" + wss.address().port, { heartbeat: 100, recover: false });
  const events = [];
  for (const type of ["error", "reconnecting"]) host.addEventListener(type, () => events.push(type));
  await until(() => pings >= 5);
  assert.equal(host.status, "open");
  assert.deepEqual(events, []);
  host.close();
  wss.close();
});

test("heartbeat 0 sends no ping", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.on("listening", r));
  const seen = [];
  wss.on("connection", (ws) => ws.on("message", (raw) => {
    const m = JSON.parse(raw);
    seen.push(m.type);
    if (m.type === "create") ws.send(JSON.stringify({ type: "created", room: "Old123", instance: "", region: "", index: 0 }));
  }));
  const host = await PartySocket.create("http://127.0.0.1:" + wss.address().port, { heartbeat: 0 });
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(seen, ["create"]);
  assert.equal(host.status, "open");
  host.close();
  wss.close();
});
