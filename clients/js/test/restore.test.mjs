// Issue 23, item 7 under Node's test runner: crash-proof rooms. The
// server is killed (-9) and started again on its port with the same
// HANDOFF_SECRET, empty: the clients' rejoin gets "Room not found", and
// they restore the room from their tickets. Against real servers, as
// client.test.mjs.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { WebSocketServer } from "ws";
import { PartySocket, RESTORE_FAILED } from "../party-sockets.js";
import { serverBinary } from "./server.mjs";

const built = serverBinary();
const procs = new Set();
after(() => {
  for (const p of procs) p.kill("SIGKILL");
  built.cleanup();
});

const secret = "restore-test-secret-0123456789abcdef";

// Node 20 has no localStorage: a Map stands in, as a browser's would.
const store = new Map();
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

function freePort() {
  const srv = net.createServer();
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  }));
}

// machine is a server on a fixed port that the test kills (-9) and starts
// again there, as a crashed machine that comes back empty.
async function machine(env = { HANDOFF_SECRET: secret }) {
  const port = await freePort();
  let proc;
  const start = (more = env) => {
    proc = spawn(built.bin, [], { env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), ...more }, stdio: ["ignore", "ignore", "pipe"] });
    procs.add(proc);
    return new Promise((resolve, reject) => {
      let buf = "";
      const t = setTimeout(() => reject(new Error("the server did not start in 10 s")), 10000);
      proc.stderr.on("data", (d) => {
        if ((buf += d).includes("msg=listening")) {
          clearTimeout(t);
          resolve();
        }
      });
      proc.on("exit", (code) => reject(new Error("server exited " + code + ": " + buf)));
    });
  };
  await start();
  return {
    url: "http://127.0.0.1:" + port,
    crash: (more) => {
      const dead = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      procs.delete(proc);
      return dead.then(() => start(more));
    },
    stop: () => { proc.kill("SIGKILL"); procs.delete(proc); },
  };
}

// cutter is a network to target that the test cuts (every connection
// reset); new connections get through.
function cutter(target) {
  const socks = new Set();
  const port = Number(new URL(target).port);
  const srv = net.createServer((c) => {
    const up = net.connect(port, "127.0.0.1");
    socks.add(c).add(up);
    c.pipe(up).pipe(c);
    const end = () => { c.destroy(); up.destroy(); };
    c.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => resolve({
    url: "http://127.0.0.1:" + srv.address().port,
    cut: () => { for (const s of socks) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy(); socks.clear(); },
    close: () => srv.close(),
  })));
}

const next = (s, type) => new Promise((resolve) => s.addEventListener(type, (e) => resolve(e.detail), { once: true }));
const until = (cond, what, ms = 5000) => new Promise((resolve, reject) => {
  const start = Date.now();
  const t = setInterval(() => {
    if (cond()) { clearInterval(t); resolve(); } else if (Date.now() - start > ms) { clearInterval(t); reject(new Error("timed out waiting for " + what)); }
  }, 10);
});
const quick = { minBackoff: 50, maxBackoff: 200, heartbeat: 0 };

// fresher waits until every client holds a ticket newer than the ones
// it had when called: one sealed after what the test did before.
async function fresher(clients) {
  const before = clients.map((c) => c.ticket);
  await until(() => clients.every((c, i) => c.ticket && c.ticket !== before[i]), "fresh tickets");
}

test("after kill -9 and a restart, the host alone restores its room, with its state", { timeout: 30000 }, async (t) => {
  const m = await machine();
  t.after(m.stop);
  const host = await PartySocket.create(m.url, { maxClients: 4, ...quick });
  t.after(() => host.close());
  const errors = [];
  host.addEventListener("error", (e) => errors.push(e.detail.message));
  await until(() => host.ticket, "the first ticket");
  assert.ok(host.ticket.length <= 4096);
  host.setState({ round: 3, scores: { 0: 2 } });
  await fresher([host]);
  const restored = next(host, "restored");
  const code = host.room;
  await m.crash();
  assert.deepEqual(await restored, { room: code, index: 0, rebuilt: true });
  assert.equal(host.status, "open");
  assert.equal(host.room, code);
  assert.deepEqual(host.state, { round: 3, scores: { 0: 2 } });
  // The rebuilt room is a room: a player joins it by its code and gets
  // the state the host presented.
  const player = await PartySocket.join(m.url, code, quick);
  t.after(() => player.close());
  await until(() => player.state, "the player's state");
  assert.deepEqual(player.state, { round: 3, scores: { 0: 2 } });
  assert.deepEqual(errors, []);
});

test("two members: one rebuilds the room, the other joins it, and the game goes on in the same slots", { timeout: 30000 }, async (t) => {
  const m = await machine();
  t.after(m.stop);
  const host = await PartySocket.create(m.url, { maxClients: 4, ...quick });
  t.after(() => host.close());
  const player = await PartySocket.join(m.url, host.room, quick);
  t.after(() => player.close());
  host.setState({ round: 7, scores: { 1: 5 } });
  await until(() => player.state, "the player's state");
  await fresher([host, player]);
  const outcomes = Promise.all([next(host, "restored"), next(player, "restored")]);
  await m.crash();
  const [h, p] = await outcomes;
  assert.equal(h.index, 0);
  assert.equal(p.index, 1);
  assert.deepEqual([h.rebuilt, p.rebuilt].sort(), [false, true], "exactly one member rebuilds the room");
  assert.equal(h.room, p.room);
  await until(() => player.state && player.state.round === 7, "the state after the restore");
  assert.deepEqual(player.state, { round: 7, scores: { 1: 5 } });
  // The game goes on: both ways, and the next round's state.
  const got = next(host, "message");
  assert.equal(player.send({ buzz: 1 }), true);
  assert.deepEqual(await got, { from: 1, data: { buzz: 1 } });
  const state = next(player, "state");
  assert.equal(host.setState({ round: 8, scores: { 1: 6 } }), true);
  assert.deepEqual(await state, { data: { round: 8, scores: { 1: 6 } } });
});

test("a reloaded page keeps its ticket, and resume restores the room from it", { timeout: 30000 }, async (t) => {
  store.clear();
  const m = await machine();
  t.after(m.stop);
  // maxAttempts 0: the page is gone at the crash, without leaving.
  const host = await PartySocket.create(m.url, { maxClients: 4, persist: true, maxAttempts: 0, ...quick });
  host.setState({ round: 2 });
  await fresher([host]);
  const key = "party-sockets:" + m.url.replace("http", "ws");
  assert.equal(store.get(key + ":ticket"), host.ticket, "the ticket is not saved");
  const closed = next(host, "closed");
  await m.crash();
  assert.equal((await closed).final, false);
  const again = await PartySocket.resume(m.url, quick);
  t.after(() => again.close());
  assert.equal(again.room, host.room);
  assert.equal(again.index, 0);
  assert.deepEqual(again.state, { round: 2 });
  await until(() => store.get(key + ":ticket") && store.get(key + ":ticket") !== host.ticket, "the new room's ticket saved");
  again.close();
  assert.equal(store.has(key + ":ticket"), false, "close (leaving) kept the ticket");
});

test("with tickets off the client asks for none, restores nothing, and the lost room is final after roomWait", { timeout: 30000 }, async (t) => {
  const m = await machine();
  t.after(m.stop);
  const sent = [];
  class Watching extends globalThis.WebSocket {
    send(d) {
      sent.push(JSON.parse(d));
      super.send(d);
    }
  }
  const opts = { ...quick, roomWait: 800, tickets: false, WebSocket: Watching };
  const host = await PartySocket.create(m.url, opts);
  const events = [];
  for (const type of ["restored", "restore_failed"]) host.addEventListener(type, () => events.push(type));
  await new Promise((r) => setTimeout(r, 700)); // a ticket would have come by now
  assert.equal(host.ticket, null);
  const closed = next(host, "closed");
  await m.crash();
  const c = await closed;
  assert.equal(c.reason, "room not found");
  assert.equal(c.final, true);
  assert.deepEqual(events, []);
  assert.ok(sent.every((msg) => !("tickets" in msg) && msg.type !== "restore"), JSON.stringify(sent));
});

// Such a relay answers every create and join with "Tickets are off".
test("a relay without HANDOFF_SECRET: tickets on by default cost the game nothing", { timeout: 30000 }, async (t) => {
  const m = await machine({});
  t.after(m.stop);
  const link = await cutter(m.url);
  t.after(link.close);
  const answers = [];
  class Watching extends globalThis.WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (e) => answers.push(JSON.parse(e.data)));
    }
  }
  const host = await PartySocket.create(m.url, quick);
  t.after(() => host.close());
  const player = await PartySocket.join(link.url, host.room, { ...quick, WebSocket: Watching });
  t.after(() => player.close());
  const errors = [];
  player.addEventListener("error", (e) => errors.push(e.detail.message));
  // A rejoin, with the listener there: the answer comes again.
  const rejoined = next(player, "joined");
  link.cut();
  await rejoined;
  const got = next(host, "message");
  player.send("hi");
  assert.deepEqual(await got, { from: 1, data: "hi" });
  const off = answers.filter((a) => a.type === "error" && a.message === "Tickets are off").length;
  assert.equal(off, 2, "the relay did not answer Tickets are off to the join and the rejoin");
  assert.deepEqual(errors, [], "Tickets are off reached the game");
  assert.equal(player.ticket, null);
});

test("a final restore error: the machine comes back with another secret, and the client says why", { timeout: 30000 }, async (t) => {
  const m = await machine();
  t.after(m.stop);
  const host = await PartySocket.create(m.url, { ...quick, roomWait: 1000 });
  await until(() => host.ticket, "a ticket");
  const failed = next(host, "restore_failed");
  const closed = next(host, "closed");
  await m.crash({ HANDOFF_SECRET: "another-apps-secret-0123456789abcdef" });
  assert.deepEqual(await failed, { message: "Invalid ticket" });
  assert.ok(RESTORE_FAILED.includes("Invalid ticket"));
  assert.equal(host.ticket, null, "the refused ticket is kept");
  const c = await closed;
  assert.equal(c.reason, "room not found");
  assert.equal(c.final, true);
});

// The old relay answers restore with "Unknown message type": the client
// goes on as before tickets, and says nothing of a restore.
test("against the old relay, the lost room ends as before tickets", { timeout: 30000 }, async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.on("listening", r));
  const seen = [];
  wss.on("connection", (ws) => ws.on("message", (raw) => {
    const m = JSON.parse(raw);
    seen.push(m.type);
    if (m.type === "create") {
      ws.send(JSON.stringify({ type: "created", room: "Old123", instance: "", region: "", index: 0 }));
      ws.send(JSON.stringify({ type: "ticket", ticket: "AAAA" })); // as if it had some
      setTimeout(() => ws.terminate(), 100);
    } else if (m.type === "join") {
      ws.send(JSON.stringify({ type: "error", message: "Room not found" }));
    } else {
      ws.send(JSON.stringify({ type: "error", message: "Unknown message type" }));
    }
  }));
  const host = await PartySocket.create("http://127.0.0.1:" + wss.address().port, { ...quick, roomWait: 600 });
  const events = [];
  for (const type of ["restored", "restore_failed", "error", "message"]) host.addEventListener(type, () => events.push(type));
  const c = await next(host, "closed");
  assert.equal(c.reason, "room not found");
  assert.deepEqual(events, []);
  assert.equal(seen.filter((t) => t === "restore").length, 1, "restore asked again of a relay without it: " + seen);
  assert.ok(seen.filter((t) => t === "join").length >= 2, seen.join());
  wss.close();
});
