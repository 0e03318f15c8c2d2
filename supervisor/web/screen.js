// The VM's screen, live: noVNC's RFB client on berth's WebSocket /api/v1/vnc (the berth_token
// cookie authenticates it, like every control route). Scales to the window, reconnects after a
// disconnect (a VM reset, berth restarting) with a backoff of 0.5 s doubling to 10 s, sends
// Ctrl-Alt-Del, and types pasted text as key presses.
import RFB from "./novnc/core/rfb.js";
import keysyms from "./novnc/core/input/keysymdef.js";

const $ = (id) => document.getElementById(id);
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/vnc";

// What a test (and a curious user in the devtools) can read.
const state = { rfb: null, connects: 0, disconnects: 0, connectedAt: null, firstConnectAt: null };
window.berthScreen = state;

let backoff = 500;
let retry = null;

function setStatus(text, ok) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "bad";
}

function connect() {
  retry = null;
  setStatus("connecting…", false);
  const rfb = new RFB($("screen"), url, { shared: true, wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.background = "#111";
  rfb.addEventListener("connect", () => {
    backoff = 500;
    state.connects += 1;
    state.connectedAt = performance.now();
    state.firstConnectAt ??= state.connectedAt;
    setStatus("connected", true);
    $("cad").disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("disconnect", async (event) => {
    state.disconnects += 1;
    state.connectedAt = null;
    $("cad").disabled = true;
    if (state.rfb === rfb)
      state.rfb = null;
    // Logged out (the cookie is gone): back to the login form.
    const status = await fetch("/api/v1/status").then((r) => r.status, () => 0);
    if (status === 401) {
      location.reload();
      return;
    }
    const seconds = (backoff / 1000).toFixed(1);
    setStatus((event.detail.clean ? "disconnected" : "connection lost")
              + ", reconnecting in " + seconds + " s", false);
    retry = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  });
  rfb.addEventListener("desktopname", (event) => {
    document.title = event.detail.name + " · Berth screen";
  });
  state.rfb = rfb;
}

$("cad").addEventListener("click", () => state.rfb && state.rfb.sendCtrlAltDel());

$("paste-toggle").addEventListener("click", () => {
  const form = $("paste");
  form.hidden = !form.hidden;
  $("paste-toggle").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden)
    $("paste-text").focus();
});

// A US keyboard: the characters typed with Shift held.
const shifted = new Set('~!@#$%^&*()_+{}|:"<>?');
const XK_Return = 0xff0d;
const XK_Tab = 0xff09;
const XK_Shift_L = 0xffe1;

// The key presses that type `text`: one keysym per character, Shift around those that need it.
export function keyPresses(text) {
  const presses = [];
  for (const ch of text.replace(/\r\n?/g, "\n")) {
    if (ch === "\n") { presses.push({ keysym: XK_Return }); continue; }
    if (ch === "\t") { presses.push({ keysym: XK_Tab }); continue; }
    const code = ch.codePointAt(0);
    if (code < 0x20)
      continue;  // other control characters have no key
    presses.push({ keysym: keysyms.lookup(code),
                   shift: shifted.has(ch) || (ch !== ch.toLowerCase() && ch === ch.toUpperCase()) });
  }
  return presses;
}

$("paste").addEventListener("submit", (event) => {
  event.preventDefault();
  const rfb = state.rfb;
  if (!rfb)
    return;
  for (const press of keyPresses($("paste-text").value)) {
    if (press.shift)
      rfb.sendKey(XK_Shift_L, "ShiftLeft", true);
    rfb.sendKey(press.keysym, null);  // down and up
    if (press.shift)
      rfb.sendKey(XK_Shift_L, "ShiftLeft", false);
  }
  $("paste-text").value = "";
  rfb.focus();
});

connect();
