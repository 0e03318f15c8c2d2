#pragma once
// The control console: one self-contained HTML page (no external assets) served at GET / of the
// control listener. It uses only the control API: status, power buttons, an allow-listed QMP box,
// the live event log (SSE), a screenshot, and links to the live screen (/web/screen.html) and the
// serial console (/web/serial.html). Before the berth_token cookie is set, GET / serves
// kLoginHtml instead: a field for the token that POST /api/v1/login turns into the cookie.

#include <string_view>

namespace berth {

inline constexpr std::string_view kConsoleHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berth console</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 18px; display: flex; gap: 16px;
           align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header a { color: #9ecbff; margin-left: auto; }
  header a + a { margin-left: 0; }
  main { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(320px, 1fr); gap: 14px;
         padding: 14px; }
  section { background: #fff; border-radius: 6px; padding: 12px 14px;
            box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  h2 { font-size: 15px; margin: 0 0 8px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
  dt { color: #5b6475; }
  button { font: inherit; padding: 6px 12px; margin: 0 6px 6px 0; border-radius: 4px;
           border: 1px solid #b8bfcc; background: #fff; cursor: pointer; }
  button.danger { border-color: #c0392b; color: #c0392b; }
  select, textarea { font: 13px monospace; width: 100%; box-sizing: border-box; margin-bottom: 6px; }
  pre { background: #0f1420; color: #d6deeb; padding: 8px; border-radius: 4px; max-height: 260px;
        overflow: auto; font-size: 12px; margin: 0; white-space: pre-wrap; }
  #screen { max-width: 100%; border: 1px solid #ccd; background: #000; }
  #screen:not([src]) { display: none; }
  .ok { color: #1e8449; } .bad { color: #c0392b; }
</style>
</head>
<body>
<header><h1>Berth</h1><span id="host">…</span><span id="state">connecting…</span>
  <a id="live" href="/web/screen.html" target="_blank" rel="noopener">Live screen</a>
  <a id="serial" href="/web/serial.html" target="_blank" rel="noopener">Serial console</a></header>
<main>
  <section>
    <h2>Status</h2>
    <dl id="status"></dl>
    <h2 style="margin-top:12px">Power</h2>
    <button id="powerdown" data-action="powerdown">Power down (ACPI)</button>
    <button data-action="reset" class="danger">Reset</button>
    <button data-action="stop">Pause</button>
    <button data-action="cont">Resume</button>
    <h2 style="margin-top:12px">Guest (QEMU guest agent)</h2>
    <dl id="guest"></dl>
    <button data-action="fsfreeze">Freeze filesystems</button>
    <button data-action="fsthaw">Thaw</button>
  </section>
  <section>
    <h2>QMP (allow-listed commands only)</h2>
    <select id="command"></select>
    <textarea id="arguments" rows="3" placeholder='arguments as JSON, e.g. {"keys": [{"type": "qcode", "data": "ret"}]}'></textarea>
    <button id="run">Run</button>
    <pre id="reply">—</pre>
  </section>
  <section>
    <h2>Events</h2>
    <pre id="events"></pre>
  </section>
  <section>
    <h2>Screen</h2>
    <button id="shot">Take screenshot</button>
    <a href="/web/screen.html" target="_blank" rel="noopener">Open the live screen (keyboard and mouse)</a>
    <div><img id="screen" alt="no screenshot yet"></div>
  </section>
</main>
<script>
"use strict";
// The token travels as the berth_token cookie (HttpOnly, SameSite=Strict) that the login set.
const headers = { "Content-Type": "application/json" };
const $ = (id) => document.getElementById(id);
const log = (line) => { const e = $("events"); e.textContent += line + "\n"; e.scrollTop = e.scrollHeight; };

async function refresh() {
  try {
    const r = await fetch("/api/v1/status", { headers });
    if (r.status === 401) { location.reload(); return; }  // logged out: back to the login form
    const s = await r.json();
    $("host").textContent = s.hostname;
    const vm = s.vm ? s.vm.status : "not running";
    $("state").textContent = s.phase + " · VM " + vm;
    $("state").className = vm === "running" ? "ok" : "bad";
    const rows = { phase: s.phase, vm: vm, accel: s.accel, "VM IP": s.vm_ip,
                   "DHCP lease": s.lease_given ? "given" : "not yet",
                   uptime: Math.round(s.uptime_seconds) + " s", "QEMU starts": s.qemu_starts };
    $("status").innerHTML = "";
    for (const [k, v] of Object.entries(rows)) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      $("status").append(dt, dd);
    }
    showGuest(s.guest_agent);
    if (!$("command").options.length) {
      for (const c of s.qmp_allowed) $("command").add(new Option(c, c));
      $("command").value = "query-status";
    }
    $("shot").disabled = !s.vnc && !s.viewer;
    for (const a of document.querySelectorAll("a[href='/web/screen.html']")) a.hidden = !s.viewer;
  } catch (e) { $("state").textContent = "berth unreachable"; $("state").className = "bad"; }
}

// What the guest's agent said, as text only: the guest is untrusted.
function showGuest(g) {
  const rows = { agent: g && g.connected ? "connected" : "not answering" };
  if (g && g.os) {
    rows.OS = g.os.pretty_name || g.os.name;
    rows.kernel = g.os.kernel_release;
  }
  if (g && g.hostname) rows["guest hostname"] = g.hostname;
  if (g && g.timezone) rows["time zone"] = g.timezone.zone + " (" + g.timezone.offset_seconds + " s)";
  for (const i of (g && g.interfaces) || [])
    if (i.addresses.length) rows[i.name] = i.addresses.map((a) => a.address + "/" + a.prefix).join(" ");
  const gib = (n) => (n / 2 ** 30).toFixed(2);
  for (const f of (g && g.filesystems) || [])
    rows[f.mountpoint] = f.type + (f.total_bytes ? " " + gib(f.used_bytes) + "/" + gib(f.total_bytes) + " GiB" : "");
  if (g && g.users && g.users.length) rows.users = g.users.map((u) => u.name).join(" ");
  if (g && g.frozen) rows.filesystems = "FROZEN";
  $("guest").innerHTML = "";
  for (const [k, v] of Object.entries(rows)) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    $("guest").append(dt, dd);
  }
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  return { status: r.status, body: await r.json() };
}

for (const b of document.querySelectorAll("button[data-action]")) {
  b.onclick = async () => {
    const r = await post("/api/v1/" + b.dataset.action);
    log("> " + b.dataset.action + ": " + (r.status === 200 ? "ok" : r.body.error));
    refresh();
  };
}

$("run").onclick = async () => {
  let args = {};
  const text = $("arguments").value.trim();
  if (text) { try { args = JSON.parse(text); } catch (e) { $("reply").textContent = "arguments: " + e.message; return; } }
  const r = await post("/api/v1/qmp", { execute: $("command").value, arguments: args });
  $("reply").textContent = r.status + "\n" + JSON.stringify(r.body, null, 2);
};

$("shot").onclick = () => { $("screen").src = "/api/v1/screenshot.png?t=" + Date.now(); };

const events = new EventSource("/api/v1/events");
events.addEventListener("qmp", (m) => {
  const e = JSON.parse(m.data);
  log(new Date(e.timestamp * 1000).toISOString().slice(11, 23) + " " + e.event + " " + JSON.stringify(e.data));
  refresh();
});
events.onopen = () => log("(event stream connected)");

refresh();
setInterval(refresh, 3000);
</script>
</body>
</html>
)HTML";

inline constexpr std::string_view kLoginHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berth console: log in</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  form { max-width: 520px; margin: 60px auto; background: #fff; border-radius: 6px; padding: 16px 20px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  input { font: 13px monospace; width: 100%; box-sizing: border-box; padding: 6px; margin: 6px 0; }
  button { font: inherit; padding: 6px 12px; border-radius: 4px; border: 1px solid #b8bfcc;
           background: #fff; cursor: pointer; }
  code { background: #eef0f4; padding: 1px 4px; border-radius: 3px; }
  #error { color: #c0392b; }
</style>
</head>
<body>
<form id="login">
  <h1>Berth</h1>
  <p>Paste the control token. berth logs it at start and keeps it in the pod:
     <code>kubectl exec POD -- cat /run/berth/control-token</code></p>
  <input id="token" type="password" autocomplete="off" autofocus aria-label="control token">
  <button id="submit">Log in</button>
  <p id="error"></p>
</form>
<script>
"use strict";
document.getElementById("login").onsubmit = async (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  const r = await fetch("/api/v1/login", { method: "POST", body: "{}",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token } });
  if (r.ok) { location.reload(); return; }
  const body = await r.json().catch(() => ({}));
  document.getElementById("error").textContent = "refused: " + (body.error || r.status);
};
</script>
</body>
</html>
)HTML";

}  // namespace berth
