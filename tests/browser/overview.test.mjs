// The local cluster's overview page and the client package's README in a
// real browser (Debian's Chromium via playwright-core): run by
// browser_test.go after the buzzer quiz, on the same cluster.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { marked } from "marked";

const { FLY_EDGE, OUT_DIR, CHROMIUM } = process.env;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic"];

async function launch(t) {
  mkdirSync(OUT_DIR, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  t.after(() => browser.close());
  return browser;
}

test("overview: live machines, rooms, replays and charts; a button suspends and resumes a machine", async (t) => {
  const browser = await launch(t);
  const page = await (await browser.newContext({ viewport: { width: 1300, height: 1000 } })).newPage();
  const player = await (await browser.newContext()).newPage();

  // A room made through the fra edge by a page that stays on it.
  const ws = await player.evaluate(async (edge) => {
    const s = new WebSocket(edge.replace(/^http/, "ws") + "/");
    await new Promise((r) => (s.onopen = r));
    s.send(JSON.stringify({ type: "create", clientId: "overview-host", maxClients: 4 }));
    const m = await new Promise((r) => (s.onmessage = (e) => r(JSON.parse(e.data))));
    window.keep = s;
    return m;
  }, FLY_EDGE);
  assert.equal(ws.type, "created");

  await page.goto(`${FLY_EDGE}/.flylocal/`);
  await page.waitForFunction(() => document.querySelectorAll("#machines tbody tr").length === 4);
  // The room and its code appear on its machine's row, live.
  await page.waitForFunction((code) => document.querySelector("#machines").textContent.includes(code), ws.room,
    { timeout: 10000 });
  const holder = page.locator(`#machines tr[data-id="${ws.instance}"]`);
  assert.match(await holder.locator(".rooms").textContent(), new RegExp(`${ws.room}: 1`));
  assert.equal(await page.locator("#dns").textContent(), "up");
  // The chart draws one line per region once samples come in.
  await page.waitForFunction(() => document.querySelectorAll("#chart-clients polyline").length === 2, null, { timeout: 10000 });

  // Click "suspend" on a machine that holds nothing: its state changes on
  // the page, and "resume" brings it back.
  const other = await page.evaluate((busy) =>
    [...document.querySelectorAll("#machines tbody tr")].map((r) => r.dataset.id).find((id) => id !== busy), ws.instance);
  const row = () => page.locator(`#machines tr[data-id="${other}"]`);
  await row().locator("button", { hasText: "suspend" }).click();
  await page.waitForFunction(
    (id) => document.querySelector(`#machines tr[data-id="${id}"] .state`).textContent === "suspended", other);
  await page.screenshot({ path: join(OUT_DIR, "5-overview-suspended.png"), fullPage: true });
  await row().locator("button", { hasText: "resume" }).click();
  await page.waitForFunction(
    (id) => document.querySelector(`#machines tr[data-id="${id}"] .state`).textContent === "started", other);

  // A lookup of the code through another region's machine is a replay the
  // overview lists with its kind.
  const lookups = await page.evaluate(async ({ code }) => {
    const st = await (await fetch("/.flylocal/state")).json();
    const iad = st.edges.iad;
    return (await fetch(iad + "/room/" + code)).status;
  }, { code: ws.room });
  assert.equal(lookups, 200);
  await page.waitForFunction(() => [...document.querySelectorAll("#replays td.kind")].some((td) => td.textContent === "region"),
    null, { timeout: 5000 });
  await page.screenshot({ path: join(OUT_DIR, "5-overview.png"), fullPage: true });
  await player.evaluate(() => window.keep.close(1000));
});

test("the client package's README renders", async (t) => {
  const browser = await launch(t);
  const page = await (await browser.newContext({ viewport: { width: 900, height: 1000 } })).newPage();
  const md = readFileSync(new URL("../../clients/js/README.md", import.meta.url), "utf8");
  const body = marked.parse(md);
  await page.setContent(`<!doctype html><meta charset="utf-8"><title>party-sockets-client</title>
    <style>body{font:15px system-ui,sans-serif;max-width:46em;margin:2em auto;line-height:1.45}
    pre{background:#f4f5f7;padding:10px;overflow:auto}code{font:13px ui-monospace,monospace}</style>${body}`);
  assert.equal(await page.locator("h1").first().textContent(), "party-sockets-client");
  assert.ok(await page.locator("pre code").count() >= 1, "no code block rendered");
  assert.ok(!(await page.locator("body").textContent()).includes("```"), "a fence was left unrendered");
  await page.screenshot({ path: join(OUT_DIR, "6-package-readme.png"), fullPage: true });
});
