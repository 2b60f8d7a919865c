// The browser client under Node's test runner (npm test), against real
// servers that this test starts: the binary PARTY_SOCKETS_BIN names
// (clients/js/js_test.go passes the one it built), or one that
// ./server.mjs builds with Go.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { PartySocket, CLOSE_CODES } from "../party-sockets.js";
import { serverBinary } from "./server.mjs";

// Before any test: a missing server fails the file once, saying why.
const built = serverBinary();
let server, other;
let relay, otherRelay;

// startRelay runs a server binary and resolves with its URL.
function startRelay(bin) {
  const proc = spawn(bin, [], { env: { ...process.env, HOST: "127.0.0.1", PORT: "0" }, stdio: ["ignore", "ignore", "pipe"] });
  const url = new Promise((resolve, reject) => {
    let buf = "";
    proc.stderr.on("data", (d) => {
      buf += d;
      const m = buf.match(/msg=listening addr=(\S+)/);
      if (m) resolve("http://" + m[1]);
    });
    proc.on("exit", (code) => reject(new Error("server exited " + code)));
  });
  return { proc, url };
}

before(async () => {
  // A second relay plays the machine a rejoin reaches before its room.
  const a = startRelay(built.bin), b = startRelay(built.bin);
  server = a.proc;
  other = b.proc;
  [relay, otherRelay] = await Promise.all([a.url, b.url]);
});
after(() => {
  server?.kill("SIGKILL");
  other?.kill("SIGKILL");
  built.cleanup();
});

const next = (s, type) => new Promise((resolve) => s.addEventListener(type, (e) => resolve(e.detail), { once: true }));

// cutter is a network between a client and a relay that the test cuts;
// retarget sends new connections to another relay.
function cutter(target) {
  const socks = new Set();
  let port = Number(new URL(target).port);
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
    retarget: (u) => { port = Number(new URL(u).port); },
    close: () => srv.close(),
  })));
}

test("create, join by code, relay both ways", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  assert.match(host.room, /^[1-9A-HJ-NP-Za-km-z]{6}$/);
  const player = await PartySocket.join(relay, host.room);
  assert.equal(player.index, 1);
  const got = next(host, "message");
  assert.equal(player.send({ buzz: 1 }), true);
  assert.deepEqual(await got, { from: 1, data: { buzz: 1 } });
  const back = next(player, "message");
  host.sendTo(1, "yes");
  assert.deepEqual(await back, { from: 0, data: "yes" });
  host.close();
  player.close();
});

test("a cut socket rejoins its slot and recovers every message it missed", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  const net = await cutter(relay);
  const player = await PartySocket.join(net.url, host.room, { minBackoff: 50, maxBackoff: 200 });
  const seen = [];
  player.addEventListener("message", (e) => seen.push(e.detail.data));
  const reconnected = next(player, "joined");
  net.cut();
  for (let i = 0; i < 20; i++) host.sendTo(1, i);
  await reconnected;
  await new Promise((r) => { const t = setInterval(() => { if (seen.length >= 20) { clearInterval(t); r(); } }, 10); });
  assert.deepEqual(seen, [...Array(20).keys()], "missed, repeated or reordered");
  assert.equal(player.index, 1);
  host.close();
  player.close();
  net.close();
});

test("the host closing the room is final", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  const player = await PartySocket.join(relay, host.room);
  const closed = next(player, "closed");
  host.closeRoom();
  const c = await closed;
  assert.equal(c.code, 4001);
  assert.equal(c.final, true);
  assert.equal(CLOSE_CODES[4001].final, true);
  host.close();
});

test("a room that does not exist rejects the join", async () => {
  await assert.rejects(PartySocket.join(relay, "nope12"), /Room not found/);
});

test("a connect that never answers times out", async () => {
  const silent = net.createServer(() => {}); // accepts, never answers
  await new Promise((r) => silent.listen(0, "127.0.0.1", r));
  const url = "http://127.0.0.1:" + silent.address().port;
  const start = Date.now();
  await assert.rejects(PartySocket.create(url, { connectTimeout: 300 }), /connect timeout/);
  assert.ok(Date.now() - start < 5000);
  silent.close();
});

// A machine that stops hands its room to a sibling, and a rejoin can come
// before the room: "Room not found" is retried for roomWait, and the
// client is back in its slot once the room is there.
test("a rejoin that finds no room keeps trying for roomWait, then finds it", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  const net = await cutter(relay);
  const player = await PartySocket.join(net.url, host.room, { minBackoff: 50, maxBackoff: 200 });
  let attempts = 0;
  player.addEventListener("reconnecting", () => attempts++);
  const rejoined = next(player, "joined");
  net.retarget(otherRelay); // where the room is not (yet)
  net.cut();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(player.status, "reconnecting");
  assert.ok(attempts >= 3, "only " + attempts + " attempts while the room was not found");
  net.retarget(relay); // the room is there now
  const j = await rejoined;
  assert.equal(j.index, 1);
  assert.equal(player.status, "open");
  host.close();
  player.close();
  net.close();
});

test("a room still not found after roomWait is final", async () => {
  const host = await PartySocket.create(relay, { maxClients: 4 });
  const net = await cutter(relay);
  const player = await PartySocket.join(net.url, host.room, { minBackoff: 50, maxBackoff: 200, roomWait: 600 });
  const closed = next(player, "closed");
  net.retarget(otherRelay);
  const start = Date.now();
  net.cut();
  const c = await closed;
  assert.equal(c.reason, "room not found");
  assert.equal(c.final, true);
  assert.ok(Date.now() - start >= 600, "gave up before roomWait");
  host.close();
  net.close();
});

// Issue 25, item 5: on Node 20 without --experimental-websocket the client
// failed with "WebSocket is not defined". It dials with the WebSocket
// option when given (the "ws" package's on Node 20: js_test.go runs that
// in a scratch project), else with the runtime's.
test("the WebSocket option is the class the client dials with", async (t) => {
  const dialed = [];
  class Counting extends globalThis.WebSocket {
    constructor(url) {
      super(url);
      dialed.push(new URL(url).pathname);
    }
  }
  const host = await PartySocket.create(relay, { maxClients: 2, WebSocket: Counting });
  t.after(() => host.close());
  const player = await PartySocket.join(relay, host.room, { WebSocket: Counting });
  t.after(() => player.close());
  const got = next(host, "message");
  assert.equal(player.send("hi"), true);
  assert.deepEqual(await got, { from: 1, data: "hi" });
  assert.deepEqual(dialed, ["/", "/" + host.room]);
});

test("with no WebSocket at all, create, join and resume say which option to pass", async () => {
  const global = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  delete globalThis.WebSocket;
  try {
    const named = /no WebSocket .*pass one as the WebSocket option, e\.g\. import \{ WebSocket \} from "ws"/;
    await assert.rejects(PartySocket.create(relay), named);
    await assert.rejects(PartySocket.join(relay, "aB3xYz"), named);
    await assert.rejects(PartySocket.resume(relay), named);
  } finally {
    Object.defineProperty(globalThis, "WebSocket", global);
  }
  await assert.rejects(PartySocket.create(relay, { WebSocket: { WebSocket: globalThis.WebSocket } }),
    /the WebSocket option must be a WebSocket class.*got a value of type object/);
});
