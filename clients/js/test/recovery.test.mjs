// Reconnect without a gateway restart: a TCP proxy between the client and the real gateway
// is cut, messages are published while the client is away, and recovery must deliver
// exactly the missed ones, in order, once.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SluiceClient } from "../src/index.js";
import { ClientPool, collector, proxiedGateway, nextState, sleep, waitFor, within } from "../testing/helpers.mjs";

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

test("after a dropped connection, missed messages arrive in order exactly once; patterns resubscribe", { timeout: 15000 }, async () => {
  let tokens = 0;
  const client = new SluiceClient(proxy.wsUrl, {
    token: () => `t${++tokens}`,
    minReconnectDelay: 20,
    maxReconnectDelay: 100,
    requestTimeout: 3000,
  });
  clients.track(client);
  const states = [];
  client.on("state", (event) => states.push(event));
  await client.connect();

  const news = collector();
  const all = collector();
  const newsSubscribed = [];
  const allSubscribed = [];
  const failures = [];
  const newsSub = client.subscribe("rec.news", {
    onMessage: news.onMessage,
    onSubscribed: (result) => newsSubscribed.push(result),
    onRecoveryFailed: (failure) => failures.push(failure),
  });
  client.subscribe("rec.*", {
    onMessage: all.onMessage,
    onSubscribed: (result) => allSubscribed.push(result),
    onRecoveryFailed: (failure) => failures.push(failure),
  });
  const { epoch } = await newsSub.ready;

  for (let i = 1; i <= 3; i++) await gateway.publish("rec.news", `m${i}`);
  // Our own publication (offset 4): the gateway does not send it to us.
  assert.deepEqual(await client.publish("rec.news", "mine"), { offset: 4 });
  await news.until(3);
  await all.until(3);

  // Cut the connection and keep the client out while five messages are published.
  proxy.refuse(true);
  const dropped = nextState(client, (event) => event.state === "disconnected");
  proxy.cut();
  const event = await within(dropped, 3000, "the drop");
  assert.equal(event.code, 1006);
  assert.equal(event.willReconnect, true);
  for (let i = 5; i <= 9; i++) await gateway.publish("rec.news", `m${i}`);
  await gateway.publish("rec.other", "missed by the pattern");
  await waitFor(() => states.filter((e) => e.state === "disconnected").length >= 3, { what: "refused attempts" });

  // Let it back in.
  proxy.refuse(false);
  await waitFor(() => newsSubscribed.length === 2 && allSubscribed.length === 2, { what: "both resubscribed" });
  await news.until(8);
  await gateway.publish("rec.news", "m10");
  await news.until(9);
  await all.until(4);
  await sleep(100); // any duplicate would arrive by now

  assert.deepEqual(
    news.messages.map((m) => `${m.offset}:${m.data}`),
    ["1:m1", "2:m2", "3:m3", "5:m5", "6:m6", "7:m7", "8:m8", "9:m9", "10:m10"],
    "every missed message once, in order, without our own publication, then live ones",
  );
  assert.deepEqual(newsSubscribed[1], {
    channel: "rec.news",
    epoch,
    offset: 9,
    recovered: true,
    resubscribed: true,
  });
  assert.deepEqual(failures, [], "recovery succeeded, and patterns never report a failed recovery");
  // Patterns cannot recover: what was published while away is not replayed to them.
  assert.deepEqual(
    all.messages.map((m) => `${m.channel}:${m.offset}`),
    ["rec.news:1", "rec.news:2", "rec.news:3", "rec.news:10"],
  );
  assert.equal(allSubscribed[1].resubscribed, true);
  assert.deepEqual(newsSub.position, { epoch, offset: 10 });

  // The token function was called for every attempt, and each connection carried it.
  assert.ok(tokens >= 4, `token called ${tokens} times`);
  assert.equal(proxy.requests.length, 2, "two connections got through the proxy");
  assert.match(proxy.requests[0], /^GET \/ws\?token=t1 HTTP\/1\.1$/);
  assert.equal(proxy.requests[1], `GET /ws?token=t${tokens} HTTP/1.1`);
});

test("the back-off grows with full jitter and is capped", { timeout: 10000 }, async () => {
  // Fixed "random" at 0.999: each delay is just under min * 2^attempt, capped at max.
  const client = new SluiceClient(proxy.wsUrl, {
    minReconnectDelay: 10,
    maxReconnectDelay: 60,
    random: () => 0.999,
  });
  clients.track(client);
  proxy.refuse(true);
  const delays = [];
  client.on("state", (event) => event.state === "disconnected" && delays.push(event.delay));
  client.connect();
  await waitFor(() => delays.length >= 6, { what: "six attempts", timeout: 5000 });
  await client.close();
  proxy.refuse(false);
  assert.deepEqual(delays.slice(0, 6), [9, 19, 39, 59, 59, 59]);
});
