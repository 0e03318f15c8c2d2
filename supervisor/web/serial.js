// The guest's serial console (ttyS0) in xterm.js, over berth's WebSocket /api/v1/serial (the
// berth_token cookie authenticates it, like every control route). Berth first sends the recent
// output (up to 64 KiB), then the output as it comes; what is typed here goes to the guest, as
// keystrokes from every other viewer and from `kubectl attach` do. Reconnects after a disconnect
// (berth restarting) with a backoff of 0.5 s doubling to 10 s.
import { Terminal } from "./xterm/xterm.mjs";
import { FitAddon } from "./xterm/addon-fit.mjs";

const $ = (id) => document.getElementById(id);
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/serial";

const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000,
                            fontFamily: "monospace", fontSize: 14 });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($("terminal"));
fit.fit();
window.addEventListener("resize", () => fit.fit());

// What a test (and a curious user in the devtools) can read: the bytes received, connections.
const state = { socket: null, connects: 0, disconnects: 0, received: 0, term };
window.berthSerial = state;

const encoder = new TextEncoder();
term.onData((data) => {
  if (state.socket && state.socket.readyState === WebSocket.OPEN)
    state.socket.send(encoder.encode(data));
});
term.onBinary((data) => {  // bytes above 0x7f that xterm.js reports as a binary string
  if (state.socket && state.socket.readyState === WebSocket.OPEN)
    state.socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
});

let backoff = 500;

function setStatus(text, ok) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "bad";
}

function connect() {
  setStatus("connecting…", false);
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => {
    if (state.connects > 0)
      term.reset();  // berth replays its scrollback to every new connection
    backoff = 500;
    state.connects += 1;
    setStatus("connected", true);
    term.focus();
  });
  socket.addEventListener("message", (event) => {
    const bytes = new Uint8Array(event.data);
    state.received += bytes.length;
    term.write(bytes);
  });
  socket.addEventListener("close", async (event) => {
    if (state.socket === socket)
      state.socket = null;
    state.disconnects += 1;
    // Logged out (the cookie is gone): back to the login form.
    const status = await fetch("/api/v1/status").then((r) => r.status, () => 0);
    if (status === 401) {
      location.reload();
      return;
    }
    const seconds = (backoff / 1000).toFixed(1);
    setStatus((event.wasClean ? "disconnected" : "connection lost")
              + ", reconnecting in " + seconds + " s", false);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  });
  state.socket = socket;
}

connect();
