// Message size limits (1009), channels without history and channels that echo the
// publisher, against the real gateway.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ClientPool, Gateway, collector, nextState, sleep } from "../testing/helpers.mjs";

let gateway;
const clients = new ClientPool();

function newClient(options = {}) {
  return clients.make(gateway.wsUrl, options);
}

before(async () => {
  gateway = new Gateway({
    server: { max_message_size: '"1KiB"' },
    channels: `[[channels]]
pattern = "keep.*"
history_size = 100
history_ttl = "5m"

[[channels]]
pattern = "echo.*"
history_size = 100
exclude_publisher = false`,
  });
  await gateway.start();
});

after(async () => {
  await clients.closeAll();
  await gateway?.dispose();
});

test("a frame over max_message_size: 1009, the request rejects, the client reconnects and recovers", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const got = collector();
  const subscribed = [];
  const failures = [];
  await client.subscribe("keep.big", {
    onMessage: got.onMessage,
    onSubscribed: (result) => subscribed.push(result),
    onRecoveryFailed: (failure) => failures.push(failure),
  }).ready;
  await gateway.publish("keep.big", "first");
  await got.until(1);

  const closed = nextState(client, (event) => event.state === "disconnected");
  const reconnected = closed.then(() => nextState(client, (event) => event.state === "connected"));
  await assert.rejects(client.publish("keep.big", "x".repeat(2000)), (error) => {
    assert.equal(error.name, "SluiceError");
    assert.equal(error.code, "disconnected");
    assert.equal(error.closeCode, 1009);
    return true;
  });
  const event = await closed;
  assert.equal(event.code, 1009);
  assert.equal(event.willReconnect, true);
  await gateway.publish("keep.big", "while away");
  await reconnected;
  await got.until(2);
  await gateway.publish("keep.big", "after");
  await got.until(3);
  await sleep(50);
  assert.deepEqual(got.messages.map((m) => `${m.offset}:${m.data}`), ["1:first", "2:while away", "3:after"]);
  assert.equal(subscribed.at(-1).recovered, true);
  assert.deepEqual(failures, []);
});

test("maxMessageSize refuses a big publish locally with too_big and keeps the connection", { timeout: 10000 }, async () => {
  const client = newClient({ maxMessageSize: 1024 });
  await client.connect();
  const states = [];
  client.on("state", (event) => states.push(event));
  await assert.rejects(client.publish("keep.local", "é".repeat(600)), { name: "SluiceError", code: "too_big" });
  assert.deepEqual(await client.publish("keep.local", "é".repeat(100)), { offset: 1 });
  assert.deepEqual(states, []);
  assert.equal(client.state, "connected");
});

test("a pattern on channels without history gets every message, in order", { timeout: 10000 }, async () => {
  // With no exact subscriber and no history, the gateway forgets a channel after each
  // message, so its offsets start again at 1: the client must not take the next message
  // for a duplicate, even with two overlapping patterns receiving identical frames.
  const client = newClient();
  await client.connect();
  const wide = collector();
  const narrow = collector();
  await client.subscribe("*", { onMessage: wide.onMessage }).ready;
  await client.subscribe("loose.*", { onMessage: narrow.onMessage }).ready;
  for (const data of ["same", "same", "other", "same"]) await gateway.publish("loose.tick", data);
  await narrow.until(4);
  await wide.until(4);
  await sleep(100);
  assert.deepEqual(narrow.messages.map((m) => m.data), ["same", "same", "other", "same"]);
  assert.deepEqual(wide.messages.map((m) => m.data), ["same", "same", "other", "same"]);
  assert.ok(narrow.messages.every((m) => m.channel === "loose.tick"));
});

test("with exclude_publisher = false the publisher gets its own messages, also around a recovery", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const got = collector();
  const subscribed = [];
  await client.subscribe("echo.room", { onMessage: got.onMessage, onSubscribed: (r) => subscribed.push(r) }).ready;
  assert.deepEqual(await client.publish("echo.room", "mine"), { offset: 1 });
  await got.until(1);
  await client.close();
  await gateway.publish("echo.room", "while away");
  await client.connect();
  assert.deepEqual(await client.publish("echo.room", "mine again"), { offset: 3 });
  await got.until(3);
  await sleep(50);
  assert.deepEqual(got.messages.map((m) => `${m.offset}:${m.data}`), ["1:mine", "2:while away", "3:mine again"]);
  assert.equal(subscribed.at(-1).recovered, true);
});
