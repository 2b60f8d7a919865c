// Issue 23, item 7, in Chromium on the local cluster (run by
// browser_test.go after the other files): the machine that holds the
// buzzer quiz is killed (-9) mid-game. Every page's rejoin gets "Room not
// found"; one page restores the room from its ticket on the region's
// other machine, the others join it, and the quiz goes on with its code,
// slots and scores.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { GAME_URL, HOST_EDGE, PLAYER_EDGE, OUT_DIR, CHROMIUM, FLY_EDGE } = process.env;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];
const CODE = /^[1-9A-HJ-NP-Za-km-z]{6}$/;

const shot = (page, name) => page.screenshot({ path: join(OUT_DIR, name + ".png"), fullPage: true });
const text = (page, sel) => page.locator(sel).textContent();
const control = (path) => fetch(`${FLY_EDGE}/.flylocal/${path}`, { method: "POST", headers: { "X-Flylocal": "1" } });
const score = (page, name) => page.evaluate((name) => {
  const row = [...document.querySelectorAll("#scores tr")].find((tr) => tr.children[0].textContent === name);
  return row ? Number(row.children[1].textContent) : null;
}, name);

test("the quiz's machine is killed (-9) mid-game: the room is restored and the game goes on with its scores",
  { timeout: 120000 }, async (t) => {
    mkdirSync(OUT_DIR, { recursive: true });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    t.after(() => browser.close());

    const host = await (await browser.newContext()).newPage();
    await host.goto(`${GAME_URL}/?role=host&relay=${encodeURIComponent(HOST_EDGE)}`);
    await host.waitForFunction((re) => new RegExp(re).test(document.getElementById("host-code").textContent), CODE.source);
    const code = await text(host, "#host-code");
    const players = {};
    for (const name of ["Alice", "Bob"]) {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${GAME_URL}/?relay=${encodeURIComponent(PLAYER_EDGE)}`);
      await page.fill("#code", code);
      await page.fill("#name", name);
      await page.click("#join");
      await page.waitForFunction(() => document.getElementById("player-status").textContent === "connected");
      players[name] = page;
    }
    const { Alice: alice, Bob: bob } = players;
    const pages = { host, alice, bob };

    // Two rounds: Alice first in round 1, Bob in round 2.
    await host.waitForFunction(() => /Alice/.test(document.getElementById("scores").textContent) &&
      /Bob/.test(document.getElementById("scores").textContent));
    await alice.click("#buzz");
    await host.waitForFunction(() => document.getElementById("first").textContent === "Alice");
    await host.click("#next");
    await bob.waitForFunction(() => document.getElementById("p-round").textContent === "2" && !document.getElementById("buzz").disabled);
    await bob.click("#buzz");
    await host.waitForFunction(() => document.getElementById("first").textContent === "Bob");
    await bob.waitForFunction(() => document.getElementById("result").textContent === "You were first!");
    assert.deepEqual([await score(host, "Alice"), await score(host, "Bob")], [1, 1]);

    // Every page holds a ticket sealed after the last state (tickets are
    // on by default), and listens for what the crash does.
    for (const p of Object.values(pages)) {
      await p.evaluate(() => {
        window.before = window.party.ticket;
        window.restores = [];
        window.party.addEventListener("restored", (e) => window.restores.push(e.detail));
        window.party.addEventListener("restore_failed", (e) => window.restores.push(e.detail));
      });
    }
    for (const p of Object.values(pages)) {
      await p.waitForFunction(() => window.party.ticket && window.party.ticket !== window.before, null, { timeout: 10000 });
    }
    const victim = await host.evaluate(() => window.party.instance);
    assert.match(victim || "", /^[0-9a-f]{14}$/, "the host does not know its machine");
    const slots = {};
    for (const [name, p] of Object.entries(pages)) slots[name] = await p.evaluate(() => window.party.index);

    // kill -9: no close frames, no hand-off.
    const killed = await control(`machines/${victim}/kill`);
    assert.equal(killed.status, 200, await killed.text());
    t.after(() => control(`machines/${victim}/start`));

    for (const [name, p] of Object.entries(pages)) {
      await p.waitForFunction(() => window.restores.length > 0 && window.party.status === "open", null, { timeout: 30000 });
      const r = await p.evaluate(() => window.restores);
      assert.equal(r.length, 1, name + ": " + JSON.stringify(r));
      assert.equal(r[0].room, code, name + " restored another room");
      assert.equal(r[0].index, slots[name], name + " came back in another slot");
      assert.notEqual(await p.evaluate(() => window.party.instance), victim, name + " is pinned to the dead machine");
    }
    const rebuilt = [];
    for (const p of Object.values(pages)) rebuilt.push(await p.evaluate(() => window.restores[0].rebuilt));
    assert.equal(rebuilt.filter(Boolean).length, 1, "rebuilt by " + JSON.stringify(rebuilt) + ", want exactly one page");
    assert.equal(await text(host, "#host-code"), code, "the code changed in the crash");
    await host.waitForFunction(() => document.getElementById("host-status").textContent === "connected");
    assert.deepEqual([await score(host, "Alice"), await score(host, "Bob")], [1, 1], "the scores after the restore");
    for (const p of [alice, bob]) {
      await p.waitForFunction(() => document.getElementById("player-status").textContent === "connected" &&
        document.getElementById("p-round").textContent === "2", null, { timeout: 15000 });
    }
    // The players' retained state, too: the restored room's, then the host's.
    const before = await host.evaluate(() => JSON.stringify(window.party.state.scores));
    assert.equal(await bob.evaluate(() => JSON.stringify(window.party.state.scores)), before, "Bob's scores after the restore");
    await shot(host, "7-host-after-crash");
    await shot(bob, "7-bob-after-crash");

    // The game goes on: round 3, Alice first, 2 points.
    await host.click("#next");
    for (const p of [alice, bob]) {
      await p.waitForFunction(() => document.getElementById("p-round").textContent === "3" && !document.getElementById("buzz").disabled,
        null, { timeout: 15000 });
    }
    await alice.click("#buzz");
    await host.waitForFunction(() => document.getElementById("first").textContent === "Alice");
    await alice.waitForFunction(() => document.getElementById("result").textContent === "You were first!");
    assert.deepEqual([await score(host, "Alice"), await score(host, "Bob")], [2, 1]);
    await shot(host, "8-host-round-3-after-crash");
    await shot(alice, "8-alice-round-3-after-crash");
  });
