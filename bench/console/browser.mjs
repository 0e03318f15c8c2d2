// The browser side of the console benchmark: Berth's screen page (noVNC over berth's WebSocket
// proxy) in headless Chromium, measured the way native_vnc.py measures vncdotool.
//   node browser.mjs latency N JSON      N keystrokes: keydown to the first paint of the canvas
//   node browser.mjs idle SECONDS JSON   bytes the WebSocket received while nothing changes
// Env: BERTH_CONSOLE_URL (default http://127.0.0.1:9251), BERTH_CONSOLE_TOKEN (required).
// Latency: from the keydown event's timestamp (when Chromium took the key) to the first
// drawImage onto the visible canvas after it; each key is held 30 ms (noVNC's flip of its back buffer: the moment the
// screen shows the echo). Keys alternate between 'x' and Backspace, 150-350 ms apart, as in
// native_vnc.py; the guest's cursor must be hidden first (native_vnc.py prepare).
import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const fail = (message) => { console.error("browser bench: " + message); process.exit(1); };
const base = process.env.BERTH_CONSOLE_URL || "http://127.0.0.1:9251";
const token = process.env.BERTH_CONSOLE_TOKEN || fail("BERTH_CONSOLE_TOKEN is not set");
const [mode, amount, out] = process.argv.slice(2);
if (!["latency", "idle"].includes(mode) || !out) fail("usage: browser.mjs latency|idle N JSON");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addCookies([{ name: "berth_token", value: token, url: base }]);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  let wsBytes = 0;
  let wsFrames = 0;
  page.on("websocket", (ws) => ws.on("framereceived", (frame) => {
    wsFrames += 1;
    wsBytes += typeof frame.payload === "string" ? Buffer.byteLength(frame.payload) : frame.payload.length;
  }));
  // Before any of the page's scripts: note every paint of a canvas that is in the document (noVNC
  // draws into a detached back buffer and flips it onto the visible one) and every keydown.
  await page.addInitScript(() => {
    window.__paints = [];
    window.__keys = [];
    const draw = CanvasRenderingContext2D.prototype.drawImage;
    CanvasRenderingContext2D.prototype.drawImage = function (...args) {
      if (this.canvas.isConnected) window.__paints.push(performance.now());
      return draw.apply(this, args);
    };
    const put = CanvasRenderingContext2D.prototype.putImageData;
    CanvasRenderingContext2D.prototype.putImageData = function (...args) {
      if (this.canvas.isConnected) window.__paints.push(performance.now());
      return put.apply(this, args);
    };
    window.addEventListener("keydown", (e) => window.__keys.push(e.timeStamp), true);
  });
  const started = Date.now();
  await page.goto(base + "/web/screen.html");
  await page.waitForFunction(() => window.__paints.length > 0, null, { timeout: 30000 })
    .catch(() => fail("the screen page never painted its canvas"));
  const firstPaintMs = Date.now() - started;
  const canvas = await page.$("canvas");
  if (!canvas) fail("no canvas on the screen page");
  await canvas.focus();
  await page.waitForTimeout(1500);  // let the first full update settle

  let result;
  if (mode === "latency") {
    const count = Number(amount);
    const samples = [];
    // The echo is the only change on a quiet screen: make sure it is quiet (no blinking cursor).
    const quiet0 = await page.evaluate(() => window.__paints.length);
    await page.waitForTimeout(3000);
    const quietPaints = (await page.evaluate(() => window.__paints.length)) - quiet0;
    if (quietPaints > 0) fail(`the screen is not quiet: ${quietPaints} paints in 3 s without a key`);
    for (let i = 0; i < count; i++) {
      const before = await page.evaluate(() => ({ paints: window.__paints.length, keys: window.__keys.length }));
      // Held 30 ms, as native_vnc.py holds its keys (see HOLD_S there).
      const key = i % 2 === 0 ? "x" : "Backspace";
      await page.keyboard.down(key);
      await page.waitForTimeout(30);
      await page.keyboard.up(key);
      const sample = await page.waitForFunction(({ paints, keys }) => {
        if (window.__keys.length <= keys) return false;
        const pressed = window.__keys[keys];
        const paint = window.__paints.slice(paints).find((t) => t >= pressed);
        return paint === undefined ? false : paint - pressed;
      }, before, { timeout: 10000, polling: 1 }).catch(() => fail(`no paint within 10 s of key ${i}`));
      samples.push(await sample.jsonValue());
      await page.waitForTimeout(150 + Math.random() * 200);
    }
    result = { samples_ms: samples, first_paint_ms: firstPaintMs };
  } else {
    const seconds = Number(amount);
    const bytes0 = wsBytes;
    const frames0 = wsFrames;
    const t0 = performance.now();
    await page.waitForTimeout(seconds * 1000);
    result = { bytes: wsBytes - bytes0, frames: wsFrames - frames0, seconds: (performance.now() - t0) / 1000,
               first_paint_ms: firstPaintMs };
  }
  if (errors.length) fail("the page had script errors: " + errors.join("; "));
  writeFileSync(out, JSON.stringify(result));
} finally {
  await browser.close();
}
