// Drives berth's browser viewer (http://127.0.0.1:9251/web/screen.html, run inside the pod's network
// namespace) in headless Chromium against the built-in guest, whose tty1 runs a root shell:
//   - without the cookie the page is the login form; after logging in the noVNC canvas shows the
//     guest's screen, nearly identical to QEMU's own screendump (GET /api/v1/screenshot.png);
//   - keys typed on the page reach the shell (the canvas changes, the command's output appears on
//     the serial console, BERTH_SCREEN_CONSOLE), and so does text from the Paste box, Shift and all;
//   - the WebSocket /api/v1/vnc is refused without the token (401) and upgraded with it (101);
//   - 3 viewers at once; with 8 connected a 9th is closed with 1013;
//   - after system_reset the viewer shows the guest again, and a dropped connection reconnects.
// Prints the page load time and the time from login to the first frame.
//   node screen.test.mjs [SCREENSHOT.png]
import { chromium } from "playwright-core";
import fs from "node:fs";
import http from "node:http";

const fail = (message) => { console.error("screen test: " + message); process.exit(1); };
const base = process.env.BERTH_SCREEN_URL || "http://127.0.0.1:9251";
const token = process.env.BERTH_SCREEN_TOKEN || fail("BERTH_SCREEN_TOKEN is not set");
const consoleLog = process.env.BERTH_SCREEN_CONSOLE || fail("BERTH_SCREEN_CONSOLE is not set");
const shot = process.argv[2];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const elapsed = (since) => Math.round(performance.now() - since);

// Waits until `check` returns a truthy value (polling every 200 ms) or fails after `ms`.
async function until(what, check, ms = 20000) {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) {
      // What the page showed, for the one who reads the failure.
      if (globalThis.page && process.env.BERTH_SCREEN_FAILURE_SHOT)
        await globalThis.page.screenshot({ path: process.env.BERTH_SCREEN_FAILURE_SHOT }).catch(() => {});
      fail("timed out waiting for " + what);
    }
    await sleep(200);
  }
}

// Types `text` the way a person does: Shift held down for ">" (keyboard.type would send ">" with
// the Period key's code and no Shift, and noVNC sends QEMU the key codes).
async function typeKeys(page, text) {
  for (const ch of text) {
    if (ch === ">") {
      await page.keyboard.down("Shift");
      await page.keyboard.press("Period");
      await page.keyboard.up("Shift");
    } else {
      await page.keyboard.type(ch, { delay: 20 });
    }
  }
  await page.keyboard.press("Enter");
}

// The serial console's text since berth started.
const serial = () => fs.readFileSync(consoleLog, "utf8");

// A raw WebSocket upgrade of /api/v1/vnc: resolves {status, socket, first} where `first` is a
// promise of the first frame's opcode and payload (for a close frame: its code).
function upgrade(cookie) {
  return new Promise((resolve, reject) => {
    const headers = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "binary" };
    if (cookie) headers.Cookie = cookie;
    const request = http.request(base + "/api/v1/vnc", { headers });
    request.on("upgrade", (response, socket, head) => {
      const first = new Promise((done) => {
        let bytes = Buffer.alloc(0);
        const take = (chunk) => {
          bytes = Buffer.concat([bytes, chunk]);
          if (bytes.length < 2) return;
          const opcode = bytes[0] & 0x0f;
          const length = bytes[1] & 0x7f;
          if (bytes.length < 2 + Math.min(length, 2)) return;
          done({ opcode, code: opcode === 8 && length >= 2 ? bytes.readUInt16BE(2) : null });
        };
        socket.on("data", take);
        if (head && head.length) take(head);  // what came in the packet of the 101 answer
      });
      resolve({ status: response.statusCode, socket, first });
    });
    request.on("response", (response) => { response.resume(); resolve({ status: response.statusCode }); });
    request.on("error", reject);
    request.end();
  });
}

// In the page: the noVNC canvas's pixels against a PNG (base64), as the share of pixels that
// differ and the share of non-black canvas pixels; or {error} when the sizes differ.
async function compareWithPng(page, png) {
  return page.evaluate(async (data) => {
    const canvas = document.querySelector("#screen canvas");
    if (!canvas || !canvas.width) return { error: "no canvas" };
    const img = new Image();
    img.src = "data:image/png;base64," + data;
    await img.decode();
    if (img.width !== canvas.width || img.height !== canvas.height)
      return { error: `screendump ${img.width}x${img.height}, canvas ${canvas.width}x${canvas.height}` };
    const off = document.createElement("canvas");
    off.width = img.width; off.height = img.height;
    const ctx = off.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const want = ctx.getImageData(0, 0, img.width, img.height).data;
    const have = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let differ = 0, lit = 0;
    for (let i = 0; i < want.length; i += 4) {
      if (Math.abs(want[i] - have[i]) + Math.abs(want[i + 1] - have[i + 1]) + Math.abs(want[i + 2] - have[i + 2]) > 24) differ++;
      if (have[i] + have[i + 1] + have[i + 2] > 60) lit++;
    }
    const pixels = want.length / 4;
    return { differ: differ / pixels, lit: lit / pixels, size: `${img.width}x${img.height}` };
  }, png.toString("base64"));
}

// The canvas's pixels (for "did it change").
const canvasPixels = (page) => page.evaluate(() => {
  const c = document.querySelector("#screen canvas");
  return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0));
});
const changedShare = (a, b) => a.length !== b.length ? 1 : a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0) / a.length;

// Waits until the canvas matches QEMU's screendump (both taken again on each try).
async function matchesScreendump(page, what) {
  let last;
  await until(what, async () => {
    const dump = await page.request.get(base + "/api/v1/screenshot.png");
    if (!dump.ok()) fail("screendump: HTTP " + dump.status());
    last = await compareWithPng(page, await dump.body());
    return !last.error && last.lit > 0.005 && last.differ < 0.01;
  }, 30000).catch(() => fail(what + ": " + JSON.stringify(last)));
  return last;
}

const viewerUp = (page) => page.waitForFunction(
  () => window.berthScreen && window.berthScreen.connectedAt !== null
        && document.querySelector("#screen canvas") && document.querySelector("#screen canvas").width > 0,
  null, { timeout: 20000 });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const numbers = {};
try {
  const context = await browser.newContext({ viewport: { width: 1024, height: 640 } });
  const page = await context.newPage();
  globalThis.page = page;
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  // The WebSocket without the token, and with it.
  const refused = await upgrade(null);
  if (refused.status !== 401) fail("the WebSocket without the token answered " + refused.status + ", not 401");
  const wrong = await upgrade("berth_token=not-the-token-not-the-token");
  if (wrong.status !== 401) fail("the WebSocket with a wrong token answered " + wrong.status);
  const allowed = await upgrade("berth_token=" + token);
  if (allowed.status !== 101) fail("the WebSocket with the token answered " + allowed.status + ", not 101");
  const greeting = await allowed.first;
  if (greeting.opcode !== 2) fail("the first WebSocket frame is not binary RFB: opcode " + greeting.opcode);
  allowed.socket.destroy();

  // Without the cookie the page is the login form; logging in reloads it as the viewer.
  await page.goto(base + "/web/screen.html");
  if (!(await page.$("#token")) || (await page.$("#screen"))) fail("without the token the page is not the login form");
  await page.fill("#token", token);
  const loginAt = performance.now();
  await Promise.all([page.waitForNavigation(), page.click("#submit")]);
  await viewerUp(page).catch(() => fail("the viewer did not connect after login"));
  await page.waitForFunction(() => {
    const c = document.querySelector("#screen canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) return true;
    return false;
  }, null, { timeout: 20000, polling: 50 }).catch(() => fail("the canvas stayed black"));
  numbers.first_frame_after_login_ms = elapsed(loginAt);
  const csp = (await page.request.get(base + "/web/screen.html")).headers()["content-security-policy"] || "";
  if (!csp.includes("script-src 'self'")) fail("the page has no strict Content-Security-Policy: " + csp);

  // The canvas is what QEMU's own screendump is.
  const match = await matchesScreendump(page, "the canvas to match QEMU's screendump");
  numbers.screendump_match = `${match.size}, ${(match.differ * 100).toFixed(2)}% of pixels differ`;

  // Typing: the shell on tty1 runs the command (its output also goes to the serial console).
  const typed = "berth-typed-" + Math.floor(Math.random() * 1e6);
  const before = await canvasPixels(page);
  await page.click("#screen canvas");
  await typeKeys(page, `echo ${typed} >/dev/console`);  // the guest's /dev/console is ttyS0
  await until("the typed command's output on the serial console", () => serial().includes(typed));
  const after = await canvasPixels(page);
  const changed = changedShare(before, after);
  if (changed < 0.001) fail("the canvas did not change after typing (" + changed + ")");
  numbers.typed_canvas_change = `${(changed * 100).toFixed(2)}% of pixels`;
  await matchesScreendump(page, "the canvas to match the screendump after typing");

  // Paste: typed as key presses, Shift included for upper case and symbols.
  const pasted = "Pasted_" + Math.floor(Math.random() * 1e6) + "-OK";
  await page.click("#paste-toggle");
  await page.fill("#paste-text", `echo "${pasted}" >/dev/ttyS0\n`);
  await page.click("#paste-send");
  await until("the pasted text on the serial console", () => serial().includes(pasted));

  // Ctrl-Alt-Del reaches the guest: its init reboots it (inittab's ctrlaltdel), and it boots again.
  if (await page.isDisabled("#cad")) fail("Ctrl-Alt-Del is disabled while connected");
  const readyBeforeCad = serial().split("berth-guest: ready").length;
  await page.click("#cad");
  await until("the guest to reboot after Ctrl-Alt-Del", () => serial().split("berth-guest: ready").length > readyBeforeCad, 120000);
  await viewerUp(page).catch(() => fail("the viewer is not connected after Ctrl-Alt-Del's reboot"));

  // Page load time, logged in (the cookie is set): navigation start to the load event.
  await page.reload();
  await viewerUp(page);
  numbers.page_load_ms = await page.evaluate(() => Math.round(performance.getEntriesByType("navigation")[0].loadEventEnd));

  // Three viewers at once, each showing the screen.
  const others = [await context.newPage(), await context.newPage()];
  for (const other of others) {
    await other.goto(base + "/web/screen.html");
    await viewerUp(other).catch(() => fail("a second or third viewer did not connect"));
  }
  for (const p of [page, ...others]) await matchesScreendump(p, "each of 3 viewers to show the screen");
  const metrics = await (await fetch("http://127.0.0.1:9250/metrics")).text();
  if (!/^berth_viewers 3$/m.test(metrics)) fail("berth_viewers is not 3: " + (metrics.match(/^berth_viewers .*$/m) || ["none"])[0]);

  // Up to 8 at once; a 9th is upgraded and closed at once with 1013 (try again later).
  const extra = [];
  for (let i = 0; i < 5; i++) {
    const u = await upgrade("berth_token=" + token);
    if (u.status !== 101) fail(`viewer ${4 + i} was refused: ${u.status}`);
    if ((await u.first).opcode !== 2) fail(`viewer ${4 + i} got no RFB greeting`);
    extra.push(u.socket);
  }
  const ninth = await upgrade("berth_token=" + token);
  const closed = await ninth.first;
  if (ninth.status !== 101 || closed.opcode !== 8 || closed.code !== 1013)
    fail("the 9th viewer was not closed with 1013: " + JSON.stringify({ status: ninth.status, ...closed }));
  ninth.socket.destroy();
  for (const s of extra) s.destroy();
  for (const other of others) await other.close();

  // A reset: the guest boots again; the viewer shows it (same connection or a new one).
  const readyBefore = serial().split("berth-guest: ready").length;
  const reset = await page.request.post(base + "/api/v1/reset", { data: {} });
  if (!reset.ok()) fail("reset: HTTP " + reset.status());
  await until("the guest to boot again after the reset", () => serial().split("berth-guest: ready").length > readyBefore, 120000);
  await viewerUp(page).catch(() => fail("the viewer is not connected after the reset"));
  await matchesScreendump(page, "the canvas to match the screendump after the reset");
  const again = "berth-after-reset-" + Math.floor(Math.random() * 1e6);
  await page.click("#screen canvas");
  await until("the shell on tty1 after the reset", async () => {
    await typeKeys(page, `echo ${again} >/dev/console`);
    await sleep(1000);
    return serial().includes(again);
  }, 60000);

  // A dropped connection: the page reconnects by itself (backoff from 0.5 s).
  const connects = await page.evaluate(() => window.berthScreen.connects);
  const droppedAt = performance.now();
  await page.evaluate(() => window.berthScreen.rfb.disconnect());
  await page.waitForFunction((n) => window.berthScreen.connects > n && window.berthScreen.connectedAt !== null,
                             connects, { timeout: 15000 }).catch(() => fail("the viewer did not reconnect"));
  numbers.reconnect_ms = elapsed(droppedAt);
  await matchesScreendump(page, "the canvas to match the screendump after reconnecting");

  if (shot) await page.screenshot({ path: shot });
  // Resource errors (the login form's favicon, 401 then 404) are not script errors.
  const real = errors.filter((e) => !/WebSocket|Failed to connect|disconnect|Failed to load resource/i.test(e));
  if (real.length) fail("the page had script errors: " + real.join("; "));
  console.log("screen test: numbers " + JSON.stringify(numbers));
  console.log("screen test: login, screendump match, typing, paste, 3 viewers, the cap, reset and reconnect all worked");
} finally {
  await browser.close();
}
