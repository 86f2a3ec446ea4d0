// Token lifetime against the real gateway with the real jwt-auth plugin: `refresh()` keeps
// a connection past its first token's expiry, a 4003 close reconnects with a new token
// when `token` is a function, and stops a client whose token is a fixed string. With a
// token function the client refreshes by itself before each expiry (read from the JWT's
// `exp`, then from each refresh reply), retries refused refreshes, and leaves no timer
// behind when closed.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  SluiceClient,
  SluiceError,
  shouldReconnect,
  TOKEN_CLOSE_CODES,
  REFRESH_RETRIES,
  defaultRefreshMargin,
  tokenExpiry,
} from "../src/index.js";
import { ClientPool, Gateway, REPO_ROOT, API_KEY, collector, sleep, waitFor, within } from "../testing/helpers.mjs";

const SECRET = "js-token-secret";
const JWT = path.join(REPO_ROOT, "plugins/target/wasm32-wasip2/release/jwt_auth.wasm");

function b64(text) {
  return Buffer.from(text).toString("base64url");
}

/** An HS256 token for `sub` that expires `seconds` from now. */
function token(sub, seconds) {
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + seconds }));
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A token function handing out tokens for `sub` that expire `seconds` from the call
 *  (`seconds` may be a function of the call's number, 1, 2, ...); counts its calls. */
function tokenSource(sub, seconds) {
  const source = () => {
    source.calls++;
    return typeof seconds === "function" ? seconds(source.calls) : token(sub, seconds);
  };
  source.calls = 0;
  return source;
}

/** Records a client's `state` and `error` events. */
function watch(client) {
  const events = { states: [], errors: [] };
  client.on("state", (event) => events.states.push(event));
  client.on("error", (error) => events.errors.push(error));
  return events;
}

let gateway;
const clients = new ClientPool();

before(async () => {
  gateway = new Gateway({
    config: `[server]
listen = "127.0.0.1:0"
plugin_cache = ""
[api]
keys = ["${API_KEY}"]
[plugins.jwt-auth]
path = ${JSON.stringify(JWT)}
config = { secret = "${SECRET}", leeway = 0 }
[[routes]]
path = "/ws"
plugins = ["jwt-auth"]
`,
  });
  await gateway.start();
});

after(async () => {
  await clients.closeAll();
  await gateway?.dispose();
});

test("4003 reconnects only with a token function", () => {
  assert.ok(TOKEN_CLOSE_CODES[4003]);
  assert.equal(shouldReconnect(4003), false);
  assert.equal(shouldReconnect(4003, { tokenFunction: true }), true);
});

test("refresh() keeps the connection and its subscription past the first token's expiry", { timeout: 15000 }, async () => {
  const client = clients.make(gateway.wsUrl, { token: token("alice", 2) });
  await within(client.connect(), 5000, "connect");
  const got = collector();
  await within(client.subscribe("lifetime.a", { onMessage: got.onMessage }).ready, 3000, "subscribe");
  const fresh = token("alice", 60);
  const result = await within(client.refresh(fresh), 3000, "refresh");
  const exp = JSON.parse(Buffer.from(fresh.split(".")[1], "base64url")).exp;
  assert.deepEqual(result, { expires_at: exp * 1000 });
  await sleep(3000);
  assert.equal(client.state, "connected");
  await gateway.publish("lifetime.a", { after: "expiry" });
  await got.until(1);
  assert.deepEqual(got.messages[0].data, { after: "expiry" });
  await assert.rejects(client.refresh(token("mallory", 60)), (e) => e instanceof SluiceError && e.code === "forbidden");
  assert.equal(client.state, "connected", "a refused refresh keeps the connection");
});

test("an expired connection reconnects with a new token from the token function", { timeout: 15000 }, async () => {
  let calls = 0;
  const client = clients.make(gateway.wsUrl, {
    token: () => token("bob", ++calls === 1 ? 1 : 60),
    autoRefresh: false, // else the client refreshes before the expiry, and no 4003 comes
    minReconnectDelay: 10,
    maxReconnectDelay: 50,
  });
  const states = [];
  client.on("state", (event) => states.push(event));
  await within(client.connect(), 5000, "connect");
  await waitFor(() => calls >= 2 && client.state === "connected", { timeout: 8000, what: "a reconnect with a new token" });
  const lost = states.find((s) => s.state === "disconnected" || s.code !== undefined);
  assert.equal(lost?.code, 4003, JSON.stringify(states));
  assert.equal(lost?.willReconnect, true, JSON.stringify(states));
});

test("an expired connection with a fixed token stops with 4003", { timeout: 15000 }, async () => {
  const client = clients.make(gateway.wsUrl, { token: token("carol", 1), minReconnectDelay: 10 });
  const states = [];
  client.on("state", (event) => states.push(event));
  await within(client.connect(), 5000, "connect");
  await waitFor(() => client.state === "disconnected", { timeout: 8000, what: "the client to stop" });
  await sleep(200);
  assert.equal(client.state, "disconnected", "it does not reconnect");
  const last = states.at(-1);
  assert.deepEqual([last.state, last.code, last.willReconnect], ["disconnected", 4003, false], JSON.stringify(states));
});

test("tokenExpiry reads a JWT's exp; defaultRefreshMargin stays within the lifetime", () => {
  const exp = Math.floor(Date.now() / 1000) + 60;
  assert.equal(tokenExpiry(token("alice", 60)), exp * 1000);
  assert.equal(tokenExpiry(`${b64("{}")}.${b64('{"exp":1.5,"name":"Zoë"}')}.`), 1500, "fractions floored to ms, UTF-8 payload");
  for (const notJwt of ["opaque-token", "a.b", "a.b.c.d", `x.${b64('{"sub":"no exp"}')}.y`, `x.${b64('{"exp":"1"}')}.y`, "x.!!.y", undefined]) {
    assert.equal(tokenExpiry(notJwt), null, String(notJwt));
  }
  assert.equal(defaultRefreshMargin(3_600_000), 360_000, "a tenth of an hour");
  assert.equal(defaultRefreshMargin(20_000), 5000, "at least 5 s");
  assert.equal(defaultRefreshMargin(2000), 1000, "at most half the lifetime");
  assert.equal(defaultRefreshMargin(-1), 0, "never negative");
  assert.throws(() => new SluiceClient("ws://127.0.0.1:1/ws", { refreshMargin: -1 }), TypeError);
});

test("a token function's tokens are refreshed before they expire: no 4003, messages keep flowing", { timeout: 15000 }, async () => {
  // Tokens live 1-2 s (`exp` is in whole seconds); the connection lives 4.5 s, so it
  // needs at least three of them, and may never be closed.
  const tokens = tokenSource("dave", 2);
  const client = clients.make(gateway.wsUrl, { token: tokens });
  const events = watch(client);
  await within(client.connect(), 5000, "connect");
  const got = collector();
  await within(client.subscribe("lifetime.auto", { onMessage: got.onMessage }).ready, 3000, "subscribe");
  for (let i = 1; i <= 3; i++) {
    await sleep(1500);
    await gateway.publish("lifetime.auto", { i });
    await got.until(i);
  }
  assert.deepEqual(got.messages.map((m) => m.data.i), [1, 2, 3]);
  assert.deepEqual(events.states.map((e) => e.state), ["connecting", "connected"], JSON.stringify(events.states));
  assert.equal(client.state, "connected");
  assert.ok(tokens.calls >= 3, `the token function was called ${tokens.calls} times`);
  assert.deepEqual(events.errors, []);
});

test("only a token function refreshes by itself: a fixed token, or autoRefresh: false, meets 4003", { timeout: 15000 }, async () => {
  const fixed = clients.make(gateway.wsUrl, { token: token("erin", 2), refreshMargin: 1500 });
  const off = tokenSource("erin", 2);
  const manual = clients.make(gateway.wsUrl, { token: off, autoRefresh: false });
  const fixedEvents = watch(fixed);
  const manualEvents = watch(manual);
  let callsAt4003 = null;
  manual.on("state", (event) => {
    if (event.code === 4003) callsAt4003 ??= off.calls;
  });
  await within(Promise.all([fixed.connect(), manual.connect()]), 5000, "connect");
  await waitFor(() => fixed.state === "disconnected", { timeout: 5000, what: "the fixed token's 4003" });
  await waitFor(() => manualEvents.states.some((e) => e.code === 4003), { timeout: 5000, what: "autoRefresh: false's 4003" });
  const last = fixedEvents.states.at(-1);
  assert.deepEqual([last.code, last.willReconnect], [4003, false], JSON.stringify(fixedEvents.states));
  const lost = manualEvents.states.find((e) => e.code === 4003);
  assert.equal(lost.willReconnect, true, "a token function still reconnects after 4003");
  assert.equal(callsAt4003, 1, "no call between connect and the 4003");
  assert.deepEqual([...fixedEvents.errors, ...manualEvents.errors], []);
});

test("close() before the refresh is due leaves no timer: nothing is refreshed, a Node process exits", { timeout: 15000 }, async () => {
  const tokens = tokenSource("gina", 2);
  const client = clients.make(gateway.wsUrl, { token: tokens });
  const events = watch(client);
  await within(client.connect(), 5000, "connect");
  await client.close();
  await sleep(2200); // past the refresh (half-life) and the expiry of the token
  assert.equal(tokens.calls, 1, "the token function was not called for a refresh");
  assert.deepEqual(events.errors, []);
  assert.equal(client.state, "disconnected");

  // A 60 s token arms a refresh ~54 s out; close() must clear it, or it would keep this
  // process alive that long.
  const script = `
    import { SluiceClient } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, "clients/js/src/index.js")).href)};
    let calls = 0;
    const client = new SluiceClient(process.env.URL, { token: () => (calls++, process.env.TOKEN) });
    await client.connect();
    await client.close();
    process.on("exit", () => console.log("calls=" + calls));
  `;
  const flags = process.execArgv.filter((arg) => !arg.startsWith("--test"));
  const child = spawn(process.execPath, [...flags, "--input-type=module", "-e", script], {
    env: { ...process.env, URL: gateway.wsUrl, TOKEN: token("gina", 60) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  child.stderr.on("data", (chunk) => (err += chunk));
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const code = await within(exited, 8000, "the child process to exit after close()");
    assert.equal(code, 0, err);
    assert.equal(out.trim(), "calls=1");
  } finally {
    child.kill("SIGKILL");
  }
});

test("a manual refresh() reschedules the automatic one from its expires_at", { timeout: 15000 }, async () => {
  const tokens = tokenSource("hank", 2);
  const client = clients.make(gateway.wsUrl, { token: tokens });
  const events = watch(client);
  await within(client.connect(), 5000, "connect");
  await within(client.refresh(token("hank", 60)), 3000, "refresh");
  await sleep(2500); // past the connect token's refresh time and its expiry
  assert.equal(tokens.calls, 1, "no automatic refresh before the manual one's token nears its expiry");
  assert.deepEqual(events.states.map((e) => e.state), ["connecting", "connected"], JSON.stringify(events.states));
  assert.deepEqual(events.errors, []);
});

test("refreshMargin sets how early: a 60 s token with a 58.5 s margin is refreshed every second or so", { timeout: 15000 }, async () => {
  const tokens = tokenSource("ida", 60);
  const client = clients.make(gateway.wsUrl, { token: tokens, refreshMargin: 58_500 });
  const events = watch(client);
  await within(client.connect(), 5000, "connect");
  await waitFor(() => tokens.calls >= 3, { timeout: 5000, what: "two automatic refreshes" });
  assert.equal(client.state, "connected");
  assert.deepEqual(events.errors, []);
});

test("a refused refresh is retried, then reported; the 4003 that follows reconnects", { timeout: 15000 }, async () => {
  // The first token is jack's; later ones are mallory's, which a refresh refuses (it
  // cannot change the subject) but a new connection accepts.
  const tokens = tokenSource("jack", (call) => (call === 1 ? token("jack", 2) : token("mallory", 60)));
  const client = clients.make(gateway.wsUrl, { token: tokens });
  const events = watch(client);
  await within(client.connect(), 5000, "connect");
  await waitFor(() => events.states.some((e) => e.code === 4003) && client.state === "connected", {
    timeout: 6000,
    what: "the 4003 close and a reconnect",
  });
  const refresh = events.errors.filter((e) => e instanceof SluiceError && e.code === "refresh");
  assert.equal(refresh.length, REFRESH_RETRIES + 1, events.errors.map(String).join("\n"));
  assert.deepEqual(refresh.map((e) => e.cause?.code), Array(REFRESH_RETRIES + 1).fill("forbidden"));
  assert.deepEqual(refresh.map((e) => e.willRetry), [...Array(REFRESH_RETRIES).fill(true), false]);
  assert.equal(tokens.calls, REFRESH_RETRIES + 3, "connect, the refresh and its retries, the reconnect");
  const lost = events.states.find((e) => e.code === 4003);
  assert.equal(lost.willReconnect, true);
});
