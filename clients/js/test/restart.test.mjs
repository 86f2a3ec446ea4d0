// A gateway restart in the middle of a stream: SIGTERM (clients get 1001), a new gateway on
// the same port, the client reconnects and resubscribes by itself. The memory broker loses
// its history, so recovery must fail (onRecoveryFailed), then live messages flow again.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ClientPool, Gateway, collector, nextState, sleep, waitFor, within } from "../testing/helpers.mjs";

const gateways = [];
const clients = new ClientPool();

after(async () => {
  await clients.closeAll();
  await Promise.all(gateways.map((gateway) => gateway.dispose()));
});

function newClient(url) {
  return clients.make(url);
}

/** Publishes `sN` messages over HTTP every few ms, recording each acknowledged offset. */
function publisher(gateway, channel) {
  const acked = [];
  let running = true;
  let gate = null;
  let parked = null;
  let seq = 0;
  const loop = (async () => {
    while (running) {
      if (gate) {
        parked?.();
        await gate.promise;
      }
      if (!running) break;
      const data = `s${++seq}`;
      try {
        const { offset } = await gateway.publish(channel, data);
        acked.push({ offset, data, generation: gateway.generation });
      } catch {
        // not published
      }
      await sleep(5);
    }
  })();
  return {
    acked,
    /** Resolves once the loop waits, with no publish in flight. */
    pause() {
      let resume;
      const promise = new Promise((resolve) => (resume = resolve));
      gate = { promise, resume };
      return new Promise((resolve) => (parked = resolve));
    },
    resume() {
      const current = gate;
      gate = null;
      parked = null;
      current?.resume();
    },
    async stop() {
      running = false;
      this.resume();
      await loop;
    },
  };
}

test("gateway restart mid-stream (SIGTERM): the client reconnects on the same port, recovery fails, live messages flow", { timeout: 30000 }, async () => {
  const gateway = new Gateway();
  gateways.push(gateway);
  await gateway.start();
  gateway.generation = 1;
  const client = newClient(gateway.wsUrl);
  const states = [];
  client.on("state", (event) => states.push(event));
  await client.connect();

  const got = collector();
  const subscribed = [];
  const failures = [];
  const sub = client.subscribe("rs.stream", {
    onMessage: (message) => got.onMessage({ ...message, generation: gateway.generation }),
    onSubscribed: (result) => subscribed.push(result),
    onRecoveryFailed: (failure) => failures.push({ ...failure, seen: got.messages.length }),
  });
  const first = await sub.ready;

  const stream = publisher(gateway, "rs.stream");
  await got.until(20, 10000);
  await stream.pause();
  const ackedBefore = stream.acked.length;
  assert.ok(ackedBefore >= 20);
  // Whether the gateway flushes what it acknowledged just before a SIGTERM is the TODO
  // test below; here the stream stops between two messages.
  await got.until(ackedBefore);

  // SIGTERM: the gateway flushes what it queued, then closes with 1001.
  const goingAway = nextState(client, (event) => event.state === "disconnected");
  const exit = await gateway.stop("SIGTERM");
  assert.deepEqual(exit, { code: 0, signal: null }, `graceful exit:\n${gateway.log}`);
  const event = await within(goingAway, 5000, "the close");
  // README: 1001 on shutdown. The gateway sometimes closes the TCP connection without
  // the 1001 frame (see the TODO test below), which the client sees as 1006; both
  // reconnect, and that is what this test is about.
  assert.ok([1001, 1006].includes(event.code), `closed with ${event.code} ${event.reason}`);
  assert.equal(event.willReconnect, true);
  // Everything acknowledged before the shutdown was delivered, in order, once.
  assert.deepEqual(
    got.messages.map((m) => m.offset),
    stream.acked.map((a) => a.offset),
  );
  assert.deepEqual(
    got.messages.map((m) => m.offset),
    Array.from({ length: ackedBefore }, (_, i) => i + 1),
  );
  const lastBefore = ackedBefore;

  // The client keeps trying (connection refused: 1006) while the port is closed.
  await waitFor(() => states.filter((e) => e.state === "disconnected" && e.code === 1006).length >= 1, {
    what: "a refused reconnect",
  });

  // A new gateway on the same address; the stream resumes into it.
  await gateway.restart();
  gateway.generation = 2;
  await waitFor(() => failures.length === 1, { timeout: 5000, what: "onRecoveryFailed" });
  stream.resume();
  await waitFor(() => got.messages.length >= lastBefore + 10, { timeout: 10000, what: "live messages after the restart" });
  await stream.stop();
  await waitFor(
    () => got.messages.length - lastBefore === stream.acked.filter((a) => a.generation === 2 && a.offset > failures[0].offset).length,
    { timeout: 3000, what: "the rest of the stream" },
  );
  await sleep(100);

  const [failure] = failures;
  assert.equal(failure.channel, "rs.stream");
  assert.deepEqual(failure.previous, { epoch: first.epoch, offset: lastBefore });
  assert.equal(typeof failure.reason, "string");
  assert.ok(failure.reason.length > 0);
  assert.equal(failure.seen, lastBefore, "reported before any message of the new gateway");
  assert.equal(subscribed.length, 2);
  assert.equal(subscribed[1].recovered, false);
  assert.equal(subscribed[1].resubscribed, true);

  // After the failure: exactly the new gateway's messages after the reply's offset, in order.
  const after = got.messages.slice(lastBefore);
  assert.ok(after.every((m) => m.generation === 2));
  assert.deepEqual(
    after.map((m) => `${m.offset}:${m.data}`),
    stream.acked.filter((a) => a.generation === 2 && a.offset > failure.offset).map((a) => `${a.offset}:${a.data}`),
  );
  // Offsets started again at 1 in the new gateway, and were not taken for duplicates.
  assert.equal(failure.offset, 0);
  assert.deepEqual(
    after.map((m) => m.offset),
    Array.from({ length: after.length }, (_, i) => i + 1),
  );
  assert.deepEqual(sub.position, { epoch: failure.epoch, offset: after.at(-1).offset });
});

test(
  "a restart changes the epoch, so recovery across it never claims success",
  {
    timeout: 30000,
  },
  async () => {
    const gateway = new Gateway();
    gateways.push(gateway);
    // Start at the beginning of a wall-clock second so that the restart falls in it.
    await waitFor(() => Date.now() % 1000 < 50, { interval: 1, timeout: 2000, what: "a new second" });
    await gateway.start();
    const client = newClient(gateway.wsUrl);
    await client.connect();
    const sub = client.subscribe("ep.x");
    const before = await sub.ready;
    for (let i = 1; i <= 3; i++) await gateway.publish("ep.x", `old${i}`);
    await waitFor(() => sub.position?.offset === 3, { what: "three messages" });
    await client.close();
    await gateway.stop("SIGTERM");
    await gateway.restart();
    // The new gateway's channel gets five messages before anyone asks to recover.
    for (let i = 1; i <= 5; i++) await gateway.publish("ep.x", `new${i}`);

    const late = newClient(gateway.wsUrl);
    await late.connect();
    const got = collector();
    const failures = [];
    const resumed = late.subscribe("ep.x", {
      onMessage: got.onMessage,
      onRecoveryFailed: (failure) => failures.push(failure),
      recover: { epoch: before.epoch, offset: 3 },
    });
    const result = await resumed.ready;
    await sleep(100);
    assert.equal(
      result.recovered,
      false,
      `recovery across a restart answered recovered: true and replayed ${JSON.stringify(got.messages.map((m) => m.data))}`,
    );
    assert.notEqual(result.epoch, before.epoch, "a restarted gateway's channel has a new epoch");
    assert.equal(failures.length, 1);
  },
);

test(
  "SIGTERM closes every client with 1001 after flushing (raw WebSocket, no client library)",
  {
    timeout: 60000,
    todo:
      "gateway bug: now and then (1 to 5 runs in 20 here), on SIGTERM right after a publish, a subscriber gets " +
      "no 1001 close frame (the session lingers 2 s for a close reply that never comes, then the TCP " +
      "connection ends with a FIN after the last message frame: the client sees 1006), or the last " +
      "acknowledged message is not flushed before the close",
  },
  async () => {
    const codes = [];
    for (let i = 0; i < 12; i++) {
      const gateway = new Gateway();
      gateways.push(gateway);
      await gateway.start();
      const ws = new WebSocket(gateway.wsUrl);
      const received = [];
      ws.onmessage = (event) => received.push(JSON.parse(event.data));
      await within(new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject))), 3000, "open");
      ws.send(JSON.stringify({ op: "subscribe", channel: "bye", id: 1 }));
      await waitFor(() => received.length >= 1, { what: "the subscribe reply" });
      for (let j = 1; j <= 10; j++) await gateway.publish("bye", j);
      const closed = new Promise((resolve) => (ws.onclose = (event) => resolve(event.code)));
      await gateway.stop("SIGTERM");
      const code = await within(closed, 5000, "the close");
      codes.push(`${code}/${received.filter((f) => f.op === "message").length}`);
      await gateway.dispose();
    }
    // close code / messages received, of 10 acknowledged
    assert.deepEqual(codes, Array(12).fill("1001/10"));
  },
);
