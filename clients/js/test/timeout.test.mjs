// Request timeouts, with a TCP proxy between the client and the real gateway that stops
// forwarding bytes.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SluiceError } from "../src/index.js";
import { ClientPool, collector, proxiedGateway, nextState, within } from "../testing/helpers.mjs";

let gateway;
let proxy;
const clients = new ClientPool();

before(async () => {
  ({ gateway, proxy } = await proxiedGateway());
});

after(async () => {
  await clients.closeAll();
  await proxy?.close();
  await gateway?.dispose();
});

function newClient(options = {}) {
  return clients.make(proxy.wsUrl, { maxReconnectDelay: 100, requestTimeout: 300, ...options });
}

test("a publish without an answer rejects with timeout; the connection stays", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const states = [];
  client.on("state", (event) => states.push(event));

  proxy.pause();
  const started = Date.now();
  await assert.rejects(client.publish("slow.pub", "lost?"), (error) => {
    assert.ok(error instanceof SluiceError);
    assert.equal(error.code, "timeout");
    return true;
  });
  const waited = Date.now() - started;
  assert.ok(waited >= 290 && waited < 2000, `rejected after ${waited} ms (timeout 300)`);
  assert.equal(client.state, "connected");

  proxy.resume();
  // The timed-out publish was applied after all (a timeout says nothing either way);
  // its late reply is ignored.
  assert.deepEqual(await within(client.publish("slow.pub", "second"), 2000, "publish"), { offset: 2 });
  assert.deepEqual(states, []);
});

test("a subscribe without an answer drops the connection; the client reconnects and subscribes", { timeout: 10000 }, async () => {
  const client = newClient({ connectTimeout: 2000 });
  await client.connect();
  proxy.pause();
  const dropped = nextState(client, (event) => event.state === "disconnected");
  const got = collector();
  const sub = client.subscribe("slow.sub", { onMessage: got.onMessage });
  const event = await dropped;
  assert.deepEqual(
    { code: event.code, reason: event.reason, willReconnect: event.willReconnect },
    { code: 1006, reason: "subscribe timeout", willReconnect: true },
  );
  assert.equal(sub.state, "subscribing");
  proxy.resume();
  const result = await within(sub.ready, 5000, "subscribe on the new connection");
  assert.equal(result.channel, "slow.sub");
  await gateway.publish("slow.sub", "live");
  await got.until(1);
  assert.equal(got.messages[0].data, "live");
});

test("a handshake without an answer hits connectTimeout and is retried", { timeout: 10000 }, async () => {
  const client = newClient({ connectTimeout: 300 });
  proxy.pause();
  const failed = nextState(client, (event) => event.state === "disconnected");
  const connected = client.connect();
  const event = await failed;
  assert.deepEqual(
    { code: event.code, reason: event.reason, willReconnect: event.willReconnect },
    { code: 1006, reason: "connect timeout", willReconnect: true },
  );
  proxy.resume();
  await within(connected, 5000, "connect after the proxy resumed");
  assert.equal(client.state, "connected");
});
