// The buzzer quiz in a real browser (Debian's Chromium via playwright-core)
// on the local multi-region cluster: run by browser_test.go, which starts
// the cluster and the example's server and passes their URLs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { GAME_URL, HOST_EDGE, HOST_CUT, PLAYER_EDGE, NET_CUT, OUT_DIR, CHROMIUM, DEPLOY_URL } = process.env;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];

test("buzzer quiz across regions: join by code, buzz, reconnect and reload into the same slot, " +
  "a rolling deploy mid-game, room closed is final", async (t) => {
  mkdirSync(OUT_DIR, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  t.after(() => browser.close());
  const shot = (page, name) => page.screenshot({ path: join(OUT_DIR, name + ".png"), fullPage: true });
  const text = (page, sel) => page.locator(sel).textContent();
  // Whatever the example's own server serves loads, on every page load
  // (issue 25, item 10: /favicon.ico was a 404 in every page's console).
  const failed = [];
  const watch = (page) => page.on("console", (m) => {
    if (m.type() === "error" && m.text().startsWith("Failed to load resource") && m.location().url.startsWith(GAME_URL)) {
      failed.push(m.location().url + ": " + m.text());
    }
  });

  // The host screen enters through one region's edge.
  const host = await (await browser.newContext()).newPage();
  watch(host);
  await host.goto(`${GAME_URL}/?role=host&relay=${encodeURIComponent(HOST_EDGE)}`);
  await host.waitForFunction(() => /^[1-9A-HJ-NP-Za-km-z]{6}$/.test(document.getElementById("host-code").textContent));
  const code = await text(host, "#host-code");
  assert.equal(await text(host, "#host-status"), "connected");

  // The TV host is alone in the lobby and its network blips: the emptied
  // room is kept for the host grace (the old relay deleted it), the page
  // reconnects into it, and the code on screen still works.
  await host.evaluate(() => {
    window.hostReconnects = 0;
    window.party.addEventListener("reconnecting", () => window.hostReconnects++);
  });
  assert.equal((await fetch(`${HOST_CUT}/cut?ms=500`, { method: "POST" })).status, 200);
  await host.waitForFunction(() => window.hostReconnects >= 1);
  await host.waitForFunction(
    () => window.party.status === "open" && document.getElementById("host-status").textContent === "connected",
    null, { timeout: 15000 });
  assert.equal(await text(host, "#host-code"), code, "the lobby's code changed after a blip");

  // Two phones enter through another region's edge and type the code.
  const players = {};
  for (const name of ["Alice", "Bob"]) {
    const page = await (await browser.newContext()).newPage();
    watch(page);
    await page.goto(`${GAME_URL}/?relay=${encodeURIComponent(PLAYER_EDGE)}`);
    await page.fill("#code", code);
    await page.fill("#name", name);
    await page.click("#join");
    await page.waitForSelector("#game:not(.hidden)");
    await page.waitForFunction(() => document.getElementById("player-status").textContent === "connected");
    players[name] = page;
  }
  const { Alice: alice, Bob: bob } = players;
  await host.waitForFunction(() => document.getElementById("scores").textContent.includes("Alice") &&
    document.getElementById("scores").textContent.includes("Bob"));

  // Buzz: the host sees who was first.
  await alice.click("#buzz");
  await host.waitForFunction(() => document.getElementById("first").textContent === "Alice");
  await alice.waitForFunction(() => document.getElementById("result").textContent === "You were first!");
  await bob.click("#buzz");
  await bob.waitForFunction(() => document.getElementById("result").textContent === "You were #2");
  await shot(host, "1-host-after-buzz");
  await shot(alice, "1-alice-after-buzz");

  // Next round, then the players' network is cut for real (every TCP
  // connection reset, new ones refused) for 3 s while the host starts three
  // more rounds: Bob's page reconnects into the same slot and shows every
  // round it missed, in order, once each (message recovery). Chromium's
  // own offline mode is no network cut: it leaves open WebSockets alone.
  await host.click("#next");
  await bob.waitForFunction(
    () => document.getElementById("p-round").textContent === "2" && !document.getElementById("buzz").disabled);
  const slot = await bob.evaluate(() => window.party.index);
  await bob.evaluate(() => {
    window.reconnects = 0;
    window.party.addEventListener("reconnecting", () => window.reconnects++);
  });
  const cut = await fetch(`${NET_CUT}/cut?ms=3000`, { method: "POST" });
  assert.equal(cut.status, 200);
  await bob.waitForFunction(() => window.reconnects >= 1);
  for (let i = 0; i < 3; i++) {
    await host.click("#next");
    await host.waitForFunction((r) => document.getElementById("round").textContent === String(r), 3 + i);
  }
  await bob.waitForFunction(() => document.getElementById("player-status").textContent === "connected" &&
    document.getElementById("p-round").textContent === "5", null, { timeout: 20000 });
  const log = await bob.evaluate(() => [...document.querySelectorAll("#log li")].map((li) => li.textContent));
  assert.deepEqual(log, ["Round 1", "Round 2", "Round 3", "Round 4", "Round 5"], "Bob missed or repeated a round");
  assert.ok(await bob.evaluate(() => window.reconnects) >= 1, "the network cut did not end Bob's socket");
  assert.equal(await bob.evaluate(() => window.party.index), slot, "Bob rejoined another slot");
  assert.match(await bob.evaluate(() => window.party.instance || ""), /^[0-9a-f]{14}$/, "the reconnect was not pinned");
  await bob.click("#buzz");
  await host.waitForFunction(() => document.getElementById("first").textContent === "Bob");
  await shot(bob, "2-bob-after-offline");
  await shot(host, "2-host-round-5");

  // A page reload: the saved clientId and pin bring Alice back to her slot.
  const aliceSlot = await alice.evaluate(() => window.party.index);
  await alice.reload();
  await alice.waitForFunction(() => window.party && window.party.status === "open" &&
    document.getElementById("p-round").textContent === "5", null, { timeout: 15000 });
  assert.equal(await alice.evaluate(() => window.party.index), aliceSlot, "a reload took another slot");
  assert.equal(await text(alice, "#me"), "Alice");
  await host.waitForFunction(() => (document.getElementById("scores").textContent.match(/Alice/g) || []).length === 1);
  await shot(alice, "2-alice-after-reload");

  // A rolling deploy of every machine mid-game (the local `fly deploy`):
  // the room moves from machine to machine, every page reconnects into its
  // own slot by itself, and the quiz goes on with its code and scores.
  const pages = { host, alice, bob };
  const slots = {};
  for (const [name, p] of Object.entries(pages)) {
    slots[name] = await p.evaluate(() => window.party.index);
    await p.evaluate(() => {
      window.deployReconnects = 0;
      window.party.addEventListener("reconnecting", () => window.deployReconnects++);
    });
  }
  assert.equal((await fetch(DEPLOY_URL, { method: "POST", headers: { "X-Flylocal": "1" } })).status, 202);
  let deployed;
  for (let i = 0; i < 300; i++) {
    deployed = await (await fetch(DEPLOY_URL)).json();
    if (deployed.finished) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(deployed.finished && !deployed.error && deployed.done.length === 4, "deploy: " + JSON.stringify(deployed));
  for (const [name, p] of Object.entries(pages)) {
    await p.waitForFunction(() => window.deployReconnects >= 1 && window.party.status === "open", null, { timeout: 20000 });
    assert.equal(await p.evaluate(() => window.party.index), slots[name], name + " came back in another slot");
    assert.equal(await p.evaluate(() => window.party.status), "open", name + " stopped");
  }
  assert.equal(await text(host, "#host-code"), code, "the code changed in the deploy");
  await host.click("#next");
  for (const p of [alice, bob]) {
    await p.waitForFunction(
      () => document.getElementById("p-round").textContent === "6" && !document.getElementById("buzz").disabled,
      null, { timeout: 15000 });
  }
  await alice.click("#buzz");
  await host.waitForFunction(() => document.getElementById("first").textContent === "Alice");
  await shot(host, "3-host-after-deploy");
  await shot(bob, "3-bob-after-deploy");

  // The host ends the game: players see it and stop reconnecting.
  for (const p of [alice, bob]) await p.evaluate(() => {
    window.afterClose = 0;
    window.party.addEventListener("reconnecting", () => window.afterClose++);
  });
  // "End game" asks first; the host confirms.
  let asked = "";
  host.once("dialog", (d) => { asked = d.message(); d.accept(); });
  await host.click("#end");
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => document.getElementById("player-status").textContent === "room closed");
    assert.equal(await text(p, "#result"), "The host ended the game.");
    assert.ok(await p.isVisible("#player-new"), "no New game button after the room ended");
  }
  assert.match(asked, /End the game/);
  assert.ok(await host.isVisible("#host-new"), "no New game button for the host");
  await new Promise((r) => setTimeout(r, 2000));
  for (const p of [alice, bob]) {
    assert.equal(await p.evaluate(() => window.party.status), "closed");
    assert.equal(await p.evaluate(() => window.afterClose), 0, "a player reconnected after the room closed");
  }
  await shot(alice, "4-alice-room-closed");
  await shot(host, "4-host-ended");
  assert.deepEqual(failed, [], "the example's server failed a request");
});
