// Token lifetime against the real gateway with the real jwt-auth plugin: `refresh()` keeps
// a connection past its first token's expiry, a 4003 close reconnects with a new token
// when `token` is a function, and stops a client whose token is a fixed string.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import path from "node:path";
import { SluiceError, shouldReconnect, TOKEN_CLOSE_CODES } from "../src/index.js";
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
