// The reconnect policy and back-off, without a gateway: close codes the gateway only sends
// through plugins (1008, 3000-4999) or under load (4008) are played by a scripted socket.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  SluiceClient,
  SluiceError,
  backoffDelay,
  shouldReconnect,
  matchesChannel,
  RECONNECT_CLOSE_CODES,
  FINAL_CLOSE_CODES,
} from "../src/index.js";
import { waitFor } from "../testing/helpers.mjs";

test("the close code table", () => {
  for (const code of [1000, 1001, 1005, 1006, 1009, 1011, 1012, 1013, 1014, 4008]) {
    assert.equal(shouldReconnect(code), true, `${code} reconnects`);
    assert.ok(RECONNECT_CLOSE_CODES[code]);
  }
  for (const code of [1002, 1003, 1007, 1008, 1010, 1015, 3000, 3999, 4000, 4001, 4403, 4999]) {
    assert.equal(shouldReconnect(code), false, `${code} stops`);
  }
  assert.ok(FINAL_CLOSE_CODES[1008]);
  assert.equal(shouldReconnect(1004), true, "reserved codes are treated as transient");
});

test("full-jitter back-off stays in [0, min(max, min * 2^n))", () => {
  assert.equal(backoffDelay(0, 250, 10000, () => 0), 0);
  assert.equal(backoffDelay(0, 250, 10000, () => 0.5), 125);
  assert.equal(backoffDelay(3, 250, 10000, () => 0.5), 1000);
  assert.equal(backoffDelay(10, 250, 10000, () => 0.999), 9990);
  assert.equal(backoffDelay(1000, 250, 10000, () => 0.999), 9990, "no overflow for large attempts");
  for (let attempt = 0; attempt < 20; attempt++) {
    const delay = backoffDelay(attempt, 250, 10000);
    assert.ok(delay >= 0 && delay < Math.min(10000, 250 * 2 ** attempt));
  }
});

test("pattern matching follows the gateway's prefix rule", () => {
  assert.equal(matchesChannel("news.*", "news.sport"), true);
  assert.equal(matchesChannel("news.*", "news"), false);
  assert.equal(matchesChannel("*", "anything"), true);
  assert.equal(matchesChannel("news", "news"), true);
  assert.equal(matchesChannel("news", "news.sport"), false);
});

/** A WebSocket whose server side the test scripts: `open()`, `serverClose(code)`. */
function scriptedSockets() {
  const sockets = [];
  class ScriptedWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = null;
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closed = { code, reason };
      queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "" }));
    }
    open() {
      this.onopen?.({});
    }
    receive(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    serverClose(code, reason = "") {
      this.onclose?.({ code, reason, wasClean: true });
    }
  }
  return { sockets, WebSocket: ScriptedWebSocket };
}

function scriptedClient(options = {}) {
  const { sockets, WebSocket } = scriptedSockets();
  const client = new SluiceClient("ws://gateway.invalid/ws", {
    WebSocket,
    minReconnectDelay: 1,
    maxReconnectDelay: 5,
    ...options,
  });
  const states = [];
  client.on("state", (event) => states.push(event));
  return { client, sockets, states };
}

test("1008 (a plugin's policy close) stops the client; connect() rejects", async () => {
  const { client, sockets, states } = scriptedClient();
  const connecting = client.connect();
  sockets[0].open();
  await connecting;
  sockets[0].serverClose(1008, "banned");
  assert.deepEqual(states.at(-1), { state: "disconnected", code: 1008, reason: "banned", willReconnect: false });
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(sockets.length, 1, "no reconnect");
  const again = client.connect();
  assert.equal(sockets.length, 2, "connect() starts again");
  sockets[1].serverClose(4001, "custom plugin code");
  await assert.rejects(again, (error) => error instanceof SluiceError && error.closeCode === 4001);
  assert.equal(sockets.length, 2);
});

test("4008 (slow consumer) reconnects and resubscribes with recover", async () => {
  const { client, sockets, states } = scriptedClient({ token: () => "secret token/1" });
  const got = [];
  client.subscribe("news", { onMessage: (m) => got.push(m.offset) });
  client.connect();
  await waitFor(() => sockets.length === 1);
  assert.equal(new URL(sockets[0].url).searchParams.get("token"), "secret token/1");
  sockets[0].open();
  const [subscribe] = sockets[0].sent;
  assert.deepEqual(subscribe, { op: "subscribe", channel: "news", id: subscribe.id });
  sockets[0].receive({ op: "reply", id: subscribe.id, result: { channel: "news", epoch: "e1", offset: 7, recovered: false } });
  sockets[0].receive({ op: "message", channel: "news", offset: 8, data: 1 });
  sockets[0].receive({ op: "message", channel: "news", offset: 8, data: 1 }); // a duplicate
  sockets[0].receive({ op: "message", channel: "news", offset: 6, data: 0 }); // older: dropped
  sockets[0].serverClose(4008, "slow consumer: too far behind");
  assert.equal(states.at(-1).willReconnect, true);
  await waitFor(() => sockets.length === 2, { what: "a reconnect" });
  sockets[1].open();
  const [resubscribe] = sockets[1].sent;
  assert.deepEqual(resubscribe.recover, { epoch: "e1", offset: 8 });
  sockets[1].receive({ op: "reply", id: resubscribe.id, result: { channel: "news", epoch: "e1", offset: 10, recovered: true } });
  sockets[1].receive({ op: "message", channel: "news", offset: 9, data: 2 });
  sockets[1].receive({ op: "message", channel: "news", offset: 10, data: 3 });
  assert.deepEqual(got, [8, 9, 10]);
  await client.close();
  assert.deepEqual(sockets[1].closed, { code: 1000, reason: "client closed" });
});

test("reconnect: false and a reconnect function override the table", async () => {
  {
    const { client, sockets, states } = scriptedClient({ reconnect: false });
    client.connect();
    sockets[0].open();
    sockets[0].serverClose(1001, "shutting down");
    assert.equal(states.at(-1).willReconnect, false);
  }
  {
    const seen = [];
    const { client, sockets, states } = scriptedClient({
      reconnect: ({ code }) => {
        seen.push(code);
        return code === 4403 ? true : undefined;
      },
    });
    client.connect();
    sockets[0].open();
    sockets[0].serverClose(4403, "token expired");
    assert.equal(states.at(-1).willReconnect, true);
    await waitFor(() => sockets.length === 2);
    sockets[1].open();
    sockets[1].serverClose(1008, "policy");
    assert.equal(states.at(-1).willReconnect, false, "undefined falls back to the table");
    assert.deepEqual(seen, [4403, 1008]);
  }
});

test("a token function that throws is reported and retried", async () => {
  let calls = 0;
  const { client, sockets } = scriptedClient({
    token: async () => {
      calls++;
      if (calls < 3) throw new Error("auth server down");
      return "ok";
    },
  });
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const connected = client.connect();
  await waitFor(() => sockets.length === 1, { what: "a socket after two failures" });
  sockets[0].open();
  await connected;
  assert.equal(calls, 3);
  assert.deepEqual(errors.map((e) => e.code), ["token", "token"]);
  assert.equal(new URL(sockets[0].url).searchParams.get("token"), "ok");
  await client.close();
});

test("pending requests reject with disconnected when the connection drops", async () => {
  const { client, sockets } = scriptedClient();
  client.connect();
  sockets[0].open();
  const publishing = client.publish("news", { a: 1 });
  assert.deepEqual(sockets[0].sent[0], { op: "publish", channel: "news", data: { a: 1 }, id: sockets[0].sent[0].id });
  sockets[0].serverClose(1011, "internal error");
  await assert.rejects(publishing, { code: "disconnected", closeCode: 1011 });
  await client.close();
});

test("an unavailable subscribe is retried; forbidden removes the subscription", async () => {
  const { client, sockets } = scriptedClient();
  const errors = [];
  const sub = client.subscribe("news", { onError: (error) => errors.push(error) });
  const denied = client.subscribe("secret", { onError: (error) => errors.push(error) });
  client.connect();
  sockets[0].open();
  const [first, second] = sockets[0].sent;
  sockets[0].receive({ op: "error", id: first.id, code: "unavailable", message: "plugin failed" });
  sockets[0].receive({ op: "error", id: second.id, code: "forbidden", message: "not for you" });
  await assert.rejects(denied.ready, { code: "forbidden" });
  assert.equal(denied.state, "failed");
  assert.deepEqual(client.subscriptions, [sub]);
  await waitFor(() => sockets[0].sent.length === 3, { what: "the retry" });
  const retry = sockets[0].sent[2];
  assert.equal(retry.channel, "news");
  sockets[0].receive({ op: "reply", id: retry.id, result: { channel: "news", epoch: "e", offset: 0, recovered: false } });
  assert.equal((await sub.ready).resubscribed, false);
  assert.deepEqual(errors.map((e) => [e.code, e.willRetry ?? false]), [["unavailable", true], ["forbidden", false]]);
  await client.close();
});

test("a subscription made in a 'connected' listener is sent once", async () => {
  const { client, sockets } = scriptedClient();
  client.subscribe("a");
  client.on("state", ({ state }) => {
    if (state === "connected" && client.subscriptions.length === 1) client.subscribe("b");
  });
  client.connect();
  sockets[0].open();
  assert.deepEqual(sockets[0].sent.map((f) => `${f.op} ${f.channel}`).sort(), ["subscribe a", "subscribe b"]);
  await client.close();
});

test("our own publication replayed by a recovery is skipped; live frames are never dropped", async () => {
  const { client, sockets } = scriptedClient();
  const got = [];
  client.subscribe("news", { onMessage: (m) => got.push(m.offset) });
  client.connect();
  sockets[0].open();
  const [sub] = sockets[0].sent;
  sockets[0].receive({ op: "reply", id: sub.id, result: { channel: "news", epoch: "e", offset: 0, recovered: false } });
  sockets[0].receive({ op: "message", channel: "news", offset: 1, data: "a" });
  const publishing = client.publish("news", "mine");
  const pub = sockets[0].sent[1];
  sockets[0].receive({ op: "reply", id: pub.id, result: { offset: 2 } });
  assert.deepEqual(await publishing, { offset: 2 });
  sockets[0].serverClose(1001, "bye");
  await waitFor(() => sockets.length === 2);
  sockets[1].open();
  const [resub] = sockets[1].sent;
  assert.deepEqual(resub.recover, { epoch: "e", offset: 1 });
  sockets[1].receive({ op: "reply", id: resub.id, result: { channel: "news", epoch: "e", offset: 3, recovered: true } });
  sockets[1].receive({ op: "message", channel: "news", offset: 2, data: "mine" }); // replayed: ours
  sockets[1].receive({ op: "message", channel: "news", offset: 3, data: "b" });
  // A live echo of our own publication (a channel with exclude_publisher = false).
  const again = client.publish("news", "mine too");
  sockets[1].receive({ op: "reply", id: sockets[1].sent[1].id, result: { offset: 4 } });
  await again;
  sockets[1].receive({ op: "message", channel: "news", offset: 4, data: "mine too" });
  assert.deepEqual(got, [1, 3, 4]);
  await client.close();
});
