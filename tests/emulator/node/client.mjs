// Drives one emulator hub with the official @microsoft/signalr client and prints one JSON result line.
// Used by tests/emulator/test_independent_clients.py; the test checks the result against the emulator's truth.
//
// Options (JSON in argv[2]): {url, hub: "v2" | "v1" | "test" | "mt5", transport: "WebSockets" | "ServerSentEvents" |
// "LongPolling", skipNegotiation, tokenUrl (absent = connect without a token), platform, idleMs, count}.
// The client secret comes from the CPLUGIN_CLIENT_SECRET environment variable, never the command line.
import * as signalR from "@microsoft/signalr";

const opts = JSON.parse(process.argv[2]);
const count = opts.count ?? 5;
const events = [];
let waiter = null;

async function token() {
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: opts.clientId,
    client_secret: process.env.CPLUGIN_CLIENT_SECRET ?? "",
  });
  const resp = await fetch(opts.tokenUrl, { method: "POST", body });
  return (await resp.json()).access_token;
}

function record(target, args) {
  events.push({ target, args, at: events.length, recvMs: Date.now() });
  if (waiter && waiter.check()) {
    const done = waiter.resolve;
    waiter = null;
    done();
  }
}

// Resolves once `check()` holds (evaluated after every event), or rejects after 15 s.
function until(check) {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for events")), 15000);
    waiter = { check, resolve: () => { clearTimeout(timer); resolve(); } };
  });
}

const ticksOf = (target, symbol, from = 0) =>
  events.filter((e) => e.at >= from && e.target === target && tickSymbol(e) === symbol).length;

function tickSymbol(e) {
  const tick = e.args[e.args.length - 1];
  return tick && (tick.symbol ?? tick.Symbol);
}

const builder = new signalR.HubConnectionBuilder().configureLogging(signalR.LogLevel.Warning);
const http = { transport: signalR.HttpTransportType[opts.transport], skipNegotiation: !!opts.skipNegotiation };
if (opts.tokenUrl) http.accessTokenFactory = token;
const connection = builder.withUrl(opts.url, http).build();
let closedError = null;
connection.onclose((err) => { closedError = err ? String(err) : "closed"; });
// The JS client matches handler names case-insensitively: "OnTick" also receives the v1 hub's "onTick".
for (const target of ["OnTick", "OnConnectionStatus", "ServerTime", "OnMarginCall"]) {
  connection.on(target, (...args) => record(target, args));
}

const out = { transport: opts.transport, hub: opts.hub };
try {
  await connection.start();
  out.connectionId = connection.connectionId;
  if (opts.hub === "test" || opts.hub === "mt5") {
    const pushed = opts.hub === "test" ? "ServerTime" : "OnMarginCall";
    await until(() => events.filter((e) => e.target === pushed).length >= count);
  } else {
    const v1 = opts.hub === "v1";
    const target = "OnTick";
    const args = (symbol) => (v1 ? [opts.platform, symbol] : [symbol]);
    if (v1) {
      out.connect = await connection.invoke("Connect", opts.platform);
      out.ping = await connection.invoke("Ping", opts.platform);
    }
    out.subscribe = await connection.invoke("SubscribeToTicks", ...args("EURUSD"));
    await until(() => ticksOf(target, "EURUSD") >= count);
    await connection.invoke("UnsubscribeFromTicks", ...args("EURUSD"));
    const unsubscribedAt = events.length;
    // Progress marker: a burst of another symbol proves the feed went on without EURUSD.
    await connection.invoke("subscribetoticks", ...args("GBPUSD")); // method names are case-insensitive
    await until(() => ticksOf(target, "GBPUSD", unsubscribedAt) >= count);
    out.eurAfterUnsubscribe = ticksOf(target, "EURUSD", unsubscribedAt);
    await connection.invoke("UnsubscribeFromTicks", ...args("GBPUSD"));
    if (opts.idleMs) {
      const idleFrom = events.length;
      await new Promise((resolve) => setTimeout(resolve, opts.idleMs)); // the idle period is what is tested
      out.eventsWhileIdle = events.length - idleFrom;
      const again = events.length;
      await connection.invoke("SubscribeToTicks", ...args("EURUSD"));
      await until(() => ticksOf(target, "EURUSD", again) >= 1);
      out.connectionIdAfterIdle = connection.connectionId;
    }
  }
  out.state = connection.state;
} catch (err) {
  out.error = String(err);
  out.statusCode = err.statusCode ?? null;
}
out.closedError = closedError;
out.events = events;
await connection.stop().catch(() => {});
// Exit only once the line is flushed: a pipe takes 64 KiB at a time and exit() would cut the rest.
process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
