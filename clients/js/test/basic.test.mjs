// Connect, subscribe, publish, errors and patterns against the real gateway binary.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SluiceError } from "../src/index.js";
import { ClientPool, Gateway, collector, nextState, sleep, waitFor, within } from "../testing/helpers.mjs";

let gateway;
const clients = new ClientPool();

function newClient(options = {}, url = gateway.wsUrl) {
  return clients.make(url, options);
}

before(async () => {
  gateway = new Gateway();
  await gateway.start();
});

after(async () => {
  await clients.closeAll();
  await gateway?.dispose();
});

test("connects, subscribes and receives a backend message", { timeout: 10000 }, async () => {
  const client = newClient();
  const states = [];
  client.on("state", (event) => states.push(event.state));
  await within(client.connect(), 5000, "connect");
  assert.equal(client.state, "connected");
  assert.deepEqual(states, ["connecting", "connected"]);

  const got = collector();
  const sub = client.subscribe("basic.news", { onMessage: got.onMessage });
  const result = await within(sub.ready, 3000, "subscribe reply");
  assert.equal(result.channel, "basic.news");
  assert.equal(typeof result.epoch, "string");
  assert.ok(result.epoch.length > 0, "an exact channel has an epoch");
  assert.equal(result.offset, 0);
  assert.equal(result.recovered, false);
  assert.equal(result.resubscribed, false);
  assert.equal(sub.state, "subscribed");

  const data = { headline: "hello", nested: [1, 2.5, { x: null, ok: true }], text: "héllo ✓ 😀" };
  const published = await gateway.publish("basic.news", data);
  assert.deepEqual(published, { offset: 1 });
  await got.until(1);
  assert.deepEqual(got.messages, [{ channel: "basic.news", offset: 1, data }]);
  assert.deepEqual(sub.position, { epoch: result.epoch, offset: 1 });
});

test("publish resolves with the offset; other subscribers get it, the publisher does not", { timeout: 10000 }, async () => {
  const alice = newClient();
  const bob = newClient();
  await Promise.all([alice.connect(), bob.connect()]);
  const aliceGot = collector();
  const bobGot = collector();
  await alice.subscribe("basic.chat", { onMessage: aliceGot.onMessage }).ready;
  await bob.subscribe("basic.chat", { onMessage: bobGot.onMessage }).ready;

  assert.deepEqual(await alice.publish("basic.chat", { text: "one" }), { offset: 1 });
  assert.deepEqual(await alice.publish("basic.chat", "two"), { offset: 2 });
  await bobGot.until(2);
  assert.deepEqual(bobGot.messages, [
    { channel: "basic.chat", offset: 1, data: { text: "one" } },
    { channel: "basic.chat", offset: 2, data: "two" },
  ]);

  // Alice is excluded from her own publications, but gets the backend's.
  await gateway.publish("basic.chat", 3);
  await aliceGot.until(1);
  await bobGot.until(3);
  assert.deepEqual(aliceGot.messages, [{ channel: "basic.chat", offset: 3, data: 3 }]);
});

test("gateway error replies reject with a typed SluiceError", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();

  await assert.rejects(client.publish("news.*", { x: 1 }), (error) => {
    assert.ok(error instanceof SluiceError);
    assert.equal(error.name, "SluiceError");
    assert.equal(error.code, "bad_channel");
    assert.match(error.message, /pattern/);
    assert.equal(typeof error.id, "number");
    return true;
  });
  await assert.rejects(client.publish("bad name", 1), { name: "SluiceError", code: "bad_channel" });

  const errors = [];
  const sub = client.subscribe("bad name", { onError: (error) => errors.push(error) });
  await assert.rejects(within(sub.ready, 3000, "subscribe reply"), { code: "bad_channel" });
  assert.equal(sub.state, "failed");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "bad_channel");
  assert.equal(client.subscriptions.includes(sub), false);

  // The connection survives protocol errors.
  assert.equal(client.state, "connected");
  assert.ok((await client.publish("basic.errors", true)).offset >= 1);
});

test("subscribing twice: the client refuses with the gateway's own code, already_subscribed", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const sub = client.subscribe("basic.twice");
  await sub.ready;
  assert.throws(() => client.subscribe("basic.twice"), { name: "SluiceError", code: "already_subscribed" });

  // What the gateway answers on the wire to a second subscribe on one connection:
  // the code the client mirrors.
  const ws = new WebSocket(gateway.wsUrl);
  const frames = [];
  ws.onmessage = (event) => frames.push(JSON.parse(event.data));
  await within(new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject))), 3000, "raw open");
  ws.send(JSON.stringify({ op: "subscribe", channel: "basic.twice", id: "a" }));
  ws.send(JSON.stringify({ op: "subscribe", channel: "basic.twice", id: "b" }));
  await waitFor(() => frames.length >= 2, { what: "two answers" });
  assert.equal(frames[0].op, "reply");
  assert.equal(frames[0].id, "a");
  assert.deepEqual(
    { op: frames[1].op, id: frames[1].id, code: frames[1].code },
    { op: "error", id: "b", code: "already_subscribed" },
  );
  ws.close();

  // After unsubscribing, the channel can be subscribed again.
  await sub.unsubscribe();
  const again = client.subscribe("basic.twice");
  assert.equal((await again.ready).channel, "basic.twice");
});

test("patterns deliver concrete channels; overlapping subscriptions each get every message once", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const exact = collector();
  const wide = collector();
  const narrow = collector();
  const exactSub = client.subscribe("pat.a.x", { onMessage: exact.onMessage });
  const wideSub = client.subscribe("pat.*", { onMessage: wide.onMessage });
  const narrowSub = client.subscribe("pat.a.*", { onMessage: narrow.onMessage });
  const [, wideResult] = await Promise.all([exactSub.ready, wideSub.ready, narrowSub.ready]);
  assert.deepEqual(
    { epoch: wideResult.epoch, offset: wideResult.offset, recovered: wideResult.recovered },
    { epoch: "", offset: 0, recovered: false },
  );
  assert.equal(wideSub.position, null);

  // pat.a.x matches all three subscriptions, pat.a.y two, pat.b one.
  for (const [channel, data] of [["pat.a.x", 1], ["pat.b", 2], ["pat.a.y", 3], ["pat.a.x", 4], ["pat.a.y", 5]]) {
    await gateway.publish(channel, data);
  }
  await wide.until(5);
  await narrow.until(4);
  await exact.until(2);
  await sleep(100); // would any extra copy arrive?
  const summary = (got) => got.messages.map((m) => `${m.channel}#${m.offset}=${m.data}`);
  assert.deepEqual(summary(exact), ["pat.a.x#1=1", "pat.a.x#2=4"]);
  assert.deepEqual(summary(wide), ["pat.a.x#1=1", "pat.b#1=2", "pat.a.y#1=3", "pat.a.x#2=4", "pat.a.y#2=5"]);
  assert.deepEqual(summary(narrow), ["pat.a.x#1=1", "pat.a.y#1=3", "pat.a.x#2=4", "pat.a.y#2=5"]);

  // Unsubscribe one pattern while messages flow: the others still get each exactly once.
  const unsubscribed = narrowSub.unsubscribe();
  await gateway.publish("pat.a.x", 6);
  await gateway.publish("pat.a.x", 7);
  await unsubscribed;
  await wide.until(7);
  await exact.until(4);
  await sleep(100);
  assert.deepEqual(summary(exact).slice(2), ["pat.a.x#3=6", "pat.a.x#4=7"]);
  assert.deepEqual(summary(wide).slice(5), ["pat.a.x#3=6", "pat.a.x#4=7"]);
  assert.equal(narrow.messages.length, 4, "no delivery after unsubscribe()");
});

test("unsubscribe stops delivery", { timeout: 10000 }, async () => {
  const leaver = newClient();
  const stayer = newClient();
  await Promise.all([leaver.connect(), stayer.connect()]);
  const left = collector();
  const stayed = collector();
  const sub = leaver.subscribe("basic.leave", { onMessage: left.onMessage });
  await sub.ready;
  await stayer.subscribe("basic.leave", { onMessage: stayed.onMessage }).ready;
  await gateway.publish("basic.leave", "before");
  await left.until(1);

  await within(sub.unsubscribe(), 3000, "unsubscribe");
  assert.equal(sub.state, "unsubscribed");
  await gateway.publish("basic.leave", "after");
  await stayed.until(2);
  await sleep(100);
  assert.deepEqual(left.messages.map((m) => m.data), ["before"]);
  assert.deepEqual(stayed.messages.map((m) => m.data), ["before", "after"]);

  // Unsubscribed before its reply: `ready` rejects, nothing is delivered.
  const quick = leaver.subscribe("basic.leave", { onMessage: left.onMessage });
  await quick.unsubscribe();
  await assert.rejects(quick.ready, { code: "unsubscribed" });
  await gateway.publish("basic.leave", "later");
  await stayed.until(3);
  await sleep(100);
  assert.equal(left.messages.length, 1);
});

test("before connecting: publish rejects with disconnected, subscribe waits for the connection", { timeout: 10000 }, async () => {
  const client = newClient();
  await assert.rejects(client.publish("basic.early", 1), { name: "SluiceError", code: "disconnected" });
  const got = collector();
  const sub = client.subscribe("basic.early", { onMessage: got.onMessage });
  assert.equal(sub.state, "subscribing");
  await client.connect();
  await within(sub.ready, 3000, "subscribe reply");
  await gateway.publish("basic.early", "hi");
  await got.until(1);
  assert.equal(got.messages[0].data, "hi");
});

test("a refused handshake (404) is retried with back-off, asking for a fresh token each time", { timeout: 10000 }, async () => {
  let calls = 0;
  const client = newClient({ token: async () => `t${++calls}`, minReconnectDelay: 10, maxReconnectDelay: 80 }, `ws://${gateway.addr}/no-such-route`);
  const closes = [];
  client.on("state", (event) => event.state === "disconnected" && closes.push(event));
  const connecting = client.connect();
  await waitFor(() => closes.length >= 4, { what: "four failed attempts" });
  for (const event of closes) {
    assert.equal(event.code, 1006);
    assert.equal(event.willReconnect, true);
    assert.ok(event.delay >= 0 && event.delay < 80, `delay ${event.delay} within the cap`);
  }
  assert.ok(calls >= 4, `token function called once per attempt (${calls})`);
  await client.close();
  await assert.rejects(connecting, { code: "disconnected" });
  assert.equal(client.state, "disconnected");
  const callsAtClose = calls;
  await sleep(200);
  assert.equal(calls, callsAtClose, "no attempt after close()");
});

test("close() stops reconnecting; connect() again resubscribes and recovers what was missed", { timeout: 10000 }, async () => {
  const client = newClient();
  await client.connect();
  const got = collector();
  const subscribed = [];
  const failures = [];
  const sub = client.subscribe("basic.resume", {
    onMessage: got.onMessage,
    onSubscribed: (result) => subscribed.push(result),
    onRecoveryFailed: (failure) => failures.push(failure),
  });
  await sub.ready;
  await gateway.publish("basic.resume", "a");
  await got.until(1);

  const closed = nextState(client, (event) => event.state === "disconnected");
  await client.close();
  assert.deepEqual(await closed, { state: "disconnected", code: 1000, reason: "client closed", willReconnect: false });
  await gateway.publish("basic.resume", "b");
  await gateway.publish("basic.resume", "c");

  await client.connect();
  await got.until(3);
  await gateway.publish("basic.resume", "d");
  await got.until(4);
  await sleep(50);
  assert.deepEqual(got.messages.map((m) => `${m.offset}:${m.data}`), ["1:a", "2:b", "3:c", "4:d"]);
  assert.equal(subscribed.length, 2);
  assert.equal(subscribed[1].recovered, true);
  assert.equal(subscribed[1].resubscribed, true);
  assert.deepEqual(failures, []);
});

test("a saved position recovers on a new client; a wrong epoch calls onRecoveryFailed", { timeout: 10000 }, async () => {
  const first = newClient();
  await first.connect();
  const sub = first.subscribe("basic.saved");
  const { epoch } = await sub.ready;
  for (const data of ["one", "two", "three"]) await gateway.publish("basic.saved", data);
  await waitFor(() => sub.position?.offset === 3, { what: "offset 3 seen" });

  const second = newClient();
  await second.connect();
  const got = collector();
  const recovered = second.subscribe("basic.saved", { onMessage: got.onMessage, recover: { epoch, offset: 1 } });
  const result = await recovered.ready;
  assert.equal(result.recovered, true);
  await got.until(2);
  assert.deepEqual(got.messages.map((m) => [m.offset, m.data]), [[2, "two"], [3, "three"]]);

  const third = newClient();
  await third.connect();
  const failures = [];
  const fresh = collector();
  const failed = third.subscribe("basic.saved", {
    onMessage: fresh.onMessage,
    onRecoveryFailed: (failure) => failures.push(failure),
    recover: { epoch: "not-the-epoch", offset: 1 },
  });
  const answer = await failed.ready;
  assert.equal(answer.recovered, false);
  assert.equal(failures.length, 1);
  assert.match(failures[0].reason, /epoch/);
  assert.deepEqual(failures[0].previous, { epoch: "not-the-epoch", offset: 1 });
  assert.deepEqual({ epoch: failures[0].epoch, offset: failures[0].offset }, { epoch, offset: 3 });
  await gateway.publish("basic.saved", "four");
  await fresh.until(1);
  assert.deepEqual(fresh.messages.map((m) => [m.offset, m.data]), [[4, "four"]]);

  assert.throws(() => third.subscribe("basic.*", { recover: { epoch, offset: 1 } }), TypeError);
});
