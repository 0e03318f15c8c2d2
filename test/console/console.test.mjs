// Drives the HTML console of a running berth (http://127.0.0.1:9251/, run inside the pod's network
// namespace) in headless Chromium: without the token only the login form shows; logging in with
// the token (BERTH_CONSOLE_TOKEN, from <BERTH_RUNTIME_DIR>/control-token) opens the console, the event stream connects,
// "Power down" presses the ACPI button, and the POWERDOWN and SHUTDOWN events appear in the log.
//   node console.test.mjs [SCREENSHOT.png]
import { chromium } from "playwright-core";

const url = process.env.BERTH_CONSOLE_URL || "http://127.0.0.1:9251/";
const token = process.env.BERTH_CONSOLE_TOKEN || fail("BERTH_CONSOLE_TOKEN is not set");
const shot = process.argv[2];
const fail = (message) => { console.error("console test: " + message); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  // Without the cookie: the login form and nothing of the console.
  if (await page.$("#state") || !(await page.$("#token"))) fail("without the token the page is not the login form");
  await page.fill("#token", "wrong-token-wrong-token");
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#error").textContent.includes("refused"),
                             null, { timeout: 10000 }).catch(() => fail("a wrong token was not refused"));
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#submit")]);
  if (page.url().includes("token")) fail("the token ended up in the URL: " + page.url());
  const cookies = await page.context().cookies();
  const cookie = cookies.find((c) => c.name === "berth_token");
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== "Strict") fail("no HttpOnly SameSite=Strict berth_token cookie");
  await page.waitForFunction(() => document.querySelector("#state").textContent.includes("VM running"),
                             null, { timeout: 15000 }).catch(() => fail("the status never showed a running VM"));
  await page.waitForFunction(() => document.querySelector("#events").textContent.includes("event stream connected"),
                             null, { timeout: 10000 }).catch(() => fail("the event stream did not connect"));
  const commands = await page.$$eval("#command option", (options) => options.map((o) => o.value));
  if (commands.includes("human-monitor-command") || !commands.includes("query-status"))
    fail("the QMP box offers the wrong commands: " + commands.join(" "));
  // The QMP box runs an allowed command and shows its reply.
  await page.selectOption("#command", "query-status");
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#reply").textContent.includes('"status": "running"'),
                             null, { timeout: 10000 }).catch(() => fail("query-status did not answer in the QMP box"));
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  await page.click("#powerdown");
  await page.waitForFunction(() => /POWERDOWN[\s\S]*SHUTDOWN/.test(document.querySelector("#events").textContent),
                             null, { timeout: 30000 }).catch(() => fail("no POWERDOWN and SHUTDOWN events after Power down"));
  if (errors.length) fail("the page had script errors: " + errors.join("; "));
  console.log("console test: status, event stream, QMP box and power-down all worked");
} finally {
  await browser.close();
}
