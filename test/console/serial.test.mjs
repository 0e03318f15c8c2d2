// Drives the serial console page (/web/serial.html: xterm.js over berth's WebSocket
// /api/v1/serial) of a running berth in headless Chromium: three pages at once share the guest's
// ttyS0 (a getty that user-data started): one logs in, another runs a command, and every page
// shows its output; without the token the WebSocket is refused.
//   node serial.test.mjs   (BERTH_CONSOLE_TOKEN set; run inside the pod's network namespace)
import { chromium } from "playwright-core";

const base = process.env.BERTH_CONSOLE_URL || "http://127.0.0.1:9251";
const fail = (message) => { console.error("serial console test: " + message); process.exit(1); };
const token = process.env.BERTH_CONSOLE_TOKEN || fail("BERTH_CONSOLE_TOKEN is not set");

// The terminal's whole buffer as text, in the page.
const screenText = () => {
  const buffer = window.berthSerial.term.buffer.active;
  let text = "";
  for (let i = 0; i < buffer.length; ++i)
    text += buffer.getLine(i).translateToString(true) + "\n";
  return text;
};
const waitText = (page, text, what, timeout = 30000) =>
  page.waitForFunction((t) => {
    const buffer = window.berthSerial && window.berthSerial.term.buffer.active;
    if (!buffer) return false;
    let s = "";
    for (let i = 0; i < buffer.length; ++i) s += buffer.getLine(i).translateToString(true) + "\n";
    return s.includes(t);
  }, text, { timeout }).catch(async () => fail(what + "; the page shows:\n" + await page.evaluate(screenText)));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  // Without the cookie the WebSocket is refused (the upgrade gets a 401, the socket never opens).
  const stranger = await browser.newPage();
  await stranger.goto(base + "/");
  const refused = await stranger.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve("opened");
    ws.onclose = () => resolve("refused");
  }), base.replace("http", "ws") + "/api/v1/serial");
  if (refused !== "refused") fail("the WebSocket opened without the token");
  await stranger.close();

  const context = await browser.newContext();
  const login = await context.newPage();
  await login.goto(base + "/");
  await login.fill("#token", token);
  await Promise.all([login.waitForNavigation(), login.click("#submit")]);
  const link = await login.$("a[href='/web/serial.html']");
  if (!link) fail("the console page has no link to the serial console");
  const errors = [];
  const pages = [];
  for (let i = 0; i < 3; ++i) {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base + "/web/serial.html");
    await page.waitForFunction(() => window.berthSerial && window.berthSerial.connects >= 1,
                               null, { timeout: 10000 }).catch(() => fail("page " + i + " did not connect"));
    pages.push(page);
  }
  // Every page got the scrollback: the guest's boot markers.
  for (const page of pages)
    await waitText(page, "berth-guest: ready", "a page did not get the scrollback");
  // The getty's prompt (once more after an Enter, in case it came before the scrollback's start).
  await pages[0].click("#terminal");
  await pages[0].keyboard.press("Enter");
  await waitText(pages[0], "login:", "no login prompt", 60000);
  await pages[0].keyboard.type("root");
  await pages[0].keyboard.press("Enter");
  await waitText(pages[1], "# ", "page 2 did not see the shell prompt after page 1 logged in");
  await pages[1].click("#terminal");
  await pages[1].keyboard.type("echo three-$((1+2))");
  await pages[1].keyboard.press("Enter");
  for (const page of pages)
    await waitText(page, "three-3", "a page did not show the command's output");
  await pages[2].click("#terminal");
  await pages[2].keyboard.type("echo from-$((2*2))-pages");
  await pages[2].keyboard.press("Enter");
  for (const page of pages)
    await waitText(page, "from-4-pages", "a page did not show the third page's command");
  if (errors.length) fail("the pages had script errors: " + errors.join("; "));
  console.log("serial console test: three pages share ttyS0; login, commands and output on all");
} finally {
  await browser.close();
}
