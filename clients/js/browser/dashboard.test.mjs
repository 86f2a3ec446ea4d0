// The live dashboard (dashboard/, served by the gateway's [[static]] mounts) in a real
// browser: Debian's chromium driven by playwright-core, against the real gateway binary.
// Run with clients/js/run-browser-tests, which installs both when missing. Each test saves
// a screenshot under target/browser/screenshots/, whether it passes or fails.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseFilter, parseTags } from "../../../dashboard/filter.js";
import { SluiceClient } from "../src/index.js";
import { collector, within } from "../testing/helpers.mjs";
import {
  chartInk,
  dashboardGateway,
  launchBrowser,
  messagesOf,
  openDashboard,
  screenshot,
  waitForMessage,
  waitForState,
  waitForSubscribed,
} from "./harness.mjs";

const TEST_TIMEOUT = 60000;
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/**
 * Opens the dashboard of `gateway`, runs `body` with the page's record, then checks that
 * the page threw nothing and loaded nothing from elsewhere, and saves screenshot `name`.
 */
async function withDashboard(gateway, name, body) {
  const record = await openDashboard(browser, gateway);
  try {
    await body(record);
    assert.deepEqual(record.errors, [], "errors on the page");
    assert.deepEqual(record.offsite, [], "requests beyond the gateway");
  } finally {
    await screenshot(record.page, name).catch((error) => console.error(`screenshot ${name}: ${error.message}`));
    await record.context.close();
  }
}

const unique = (label) => `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

async function subscribeOnPage(page, channel, filter = "") {
  await page.fill("#subscribe-channel", channel);
  await page.fill("#subscribe-filter", filter);
  await page.click("#subscribe-form button[type=submit]");
}

describe("the dashboard served by the gateway", () => {
  const gateway = dashboardGateway();
  before(() => gateway.start());
  after(() => gateway.dispose());

  test("loads from the gateway, connects to /demo/ws and subscribes to demo", { timeout: TEST_TIMEOUT }, async () => {
    await withDashboard(gateway, "loads-and-connects", async ({ page, frames, sent }) => {
      assert.match(await page.title(), /Sluice/);
      await waitForState(page, "connected");
      await waitForSubscribed(page, "demo");
      assert.equal(await page.locator("#state").textContent(), "connected");
      assert.equal(await page.locator("#state-detail").textContent(), `${gateway.addr}/demo/ws`);
      assert.equal(await page.locator("#reconnects").textContent(), "0");
      assert.ok(
        sent.some((frame) => frame.op === "subscribe" && frame.channel === "demo"),
        "the page sent a subscribe to demo",
      );
      assert.ok(
        frames.some((frame) => frame.op === "reply" && frame.result?.channel === "demo"),
        "the gateway answered it",
      );

      // Nothing received yet: an empty chart and the placeholder.
      assert.equal(await page.locator("#total").textContent(), "0");
      assert.equal(await chartInk(page, 0.05, 1), 0, "bars on an empty chart");
      assert.match(await page.locator("#messages").textContent(), /Nothing yet/);

      // The curl command names this gateway and the demo key.
      const curl = await page.locator("#curl").textContent();
      assert.ok(curl.includes(`curl -X POST http://${gateway.addr}/api/publish`), curl);
      assert.ok(curl.includes("Authorization: Bearer sluice-demo-api-key"), curl);
      assert.ok(curl.includes(`'{"channel":"demo","data":{"text":"hello"}}'`), curl);

      // The route's channel-guard admits demo and demo.* only.
      await subscribeOnPage(page, "news");
      const refused = page.locator('#subscriptions li[data-subscription="news"][data-state="failed"]');
      await refused.waitFor({ timeout: 5000 });
      assert.match(await refused.textContent(), /forbidden: channel `news` is not allowed/);
    });
  });

  test("shows a message published by a backend within two seconds", { timeout: TEST_TIMEOUT }, async () => {
    await withDashboard(gateway, "backend-message", async ({ page }) => {
      await waitForState(page, "connected");
      await waitForSubscribed(page, "demo");
      const text = unique("from the backend");
      const started = Date.now();
      const { offset } = await gateway.publish("demo", { text });
      const shown = await waitForMessage(page, "demo", text, 2000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 2000, `shown after ${elapsed} ms`);
      assert.ok(shown.startsWith(`#${offset}`), shown);
      assert.ok(shown.includes(JSON.stringify({ text })), shown);
      assert.equal(await page.locator('#messages section[data-channel="demo"] .count').textContent(), "1 message");
      assert.equal(await page.locator("#total").textContent(), "1");
      // Its bar, in the chart's last seconds.
      await page.waitForFunction(() => document.getElementById("rate-peak").textContent === "1", null, { timeout: 3000 });
      assert.ok((await chartInk(page, 0.9, 1)) > 0, "no bar for the message in the last seconds");
      assert.equal(await chartInk(page, 0.05, 0.8), 0, "bars where nothing was received");
    });
  });

  test("filters by tags: only messages whose tags pass the subscription's filter arrive", { timeout: TEST_TIMEOUT }, async () => {
    await withDashboard(gateway, "tag-filter", async ({ page, frames, sent }) => {
      await waitForState(page, "connected");
      await subscribeOnPage(page, "demo.tags", "color=red");
      await waitForSubscribed(page, "demo.tags");
      const subscribe = sent.find((frame) => frame.op === "subscribe" && frame.channel === "demo.tags");
      assert.deepEqual(subscribe?.filter, { eq: ["color", "red"] });

      const blue = unique("blue");
      const red = unique("red");
      await gateway.publish("demo.tags", { text: blue }, { tags: { color: "blue" } });
      await gateway.publish("demo.tags", { text: red }, { tags: { color: "red", size: "m" } });
      // Delivery is in order, so once the red one is shown the blue one would have been too.
      const shown = await waitForMessage(page, "demo.tags", red, 3000);
      assert.ok(shown.includes("color=red") && shown.includes("size=m"), `tags not shown: ${shown}`);
      assert.ok(!(await messagesOf(page, "demo.tags")).some((item) => item.includes(blue)), "the blue message is shown");
      // The gateway filtered it, not only the client: it never came over the wire.
      const carried = (needle) => frames.some((frame) => frame.op === "message" && JSON.stringify(frame.data).includes(needle));
      assert.ok(!carried(blue), "the gateway sent the blue message");
      assert.deepEqual(
        frames.find((frame) => frame.op === "message" && frame.data?.text === red)?.tags,
        { color: "red", size: "m" },
      );

      // Subscribing again replaces the filter: any of two colours, but not size xl.
      await subscribeOnPage(page, "demo.tags", "color=red|green, size!=xl");
      await waitForSubscribed(page, "demo.tags");
      assert.deepEqual(sent.filter((frame) => frame.op === "subscribe" && frame.channel === "demo.tags").at(-1).filter, {
        and: [{ in: ["color", ["red", "green"]] }, { not: { eq: ["size", "xl"] } }],
      });
      const excluded = [unique("green-xl"), unique("blue-m"), unique("untagged")];
      await gateway.publish("demo.tags", { text: excluded[0] }, { tags: { color: "green", size: "xl" } });
      await gateway.publish("demo.tags", { text: excluded[1] }, { tags: { color: "blue", size: "m" } });
      await gateway.publish("demo.tags", { text: excluded[2] });
      const green = unique("green-s");
      await gateway.publish("demo.tags", { text: green }, { tags: { color: "green", size: "s" } });
      await waitForMessage(page, "demo.tags", green, 3000);
      const listed = await messagesOf(page, "demo.tags");
      for (const text of [blue, ...excluded]) {
        assert.ok(!listed.some((item) => item.includes(text)), `${text} is shown`);
        assert.ok(!carried(text), `the gateway sent ${text}`);
      }
    });
  });

  test("publishes from the form; another client receives it", { timeout: TEST_TIMEOUT }, async () => {
    const listener = new SluiceClient(`ws://${gateway.addr}/demo/ws`, { requestTimeout: 3000 });
    const received = collector();
    const sub = listener.subscribe("demo", { onMessage: received.onMessage });
    try {
      await within(listener.connect(), 5000, "the listener's connection");
      await within(sub.ready, 5000, "the listener's subscription");
      await withDashboard(gateway, "publish-form", async ({ page }) => {
        await waitForState(page, "connected");
        const text = unique("from the page");
        await page.fill("#publish-channel", "demo");
        await page.fill("#publish-data", JSON.stringify({ text }));
        await page.fill("#publish-tags", "color=red");
        const curl = await page.locator("#curl").textContent();
        assert.ok(curl.includes(`'{"channel":"demo","data":{"text":"${text}"},"tags":{"color":"red"}}'`), curl);
        await page.click("#publish-form button[type=submit]");
        await page.waitForFunction(() => /^published to demo as #\d+$/.test(document.getElementById("publish-result").textContent), null, {
          timeout: 5000,
        });
        await received.until(1, 5000);
        assert.deepEqual(received.messages[0].data, { text });
        assert.deepEqual(received.messages[0].tags, { color: "red" });
        const offset = received.messages[0].offset;
        assert.equal(await page.locator("#publish-result").textContent(), `published to demo as #${offset}`);
        // Listed on the page as sent (the page does not receive its own publications).
        const own = page.locator('#messages section[data-channel="demo"] li.own');
        assert.equal(await own.count(), 1);
        assert.ok((await own.textContent()).startsWith(`#${offset}`));

        // Bad input is reported, and nothing is sent.
        await page.fill("#publish-data", "{nope");
        await page.click("#publish-form button[type=submit]");
        await page.locator("#publish-result.error").waitFor({ timeout: 2000 });
        assert.match(await page.locator("#publish-result").textContent(), /^data is not JSON/);
        await page.fill("#publish-data", "{}");
        await page.fill("#publish-channel", "news");
        await page.click("#publish-form button[type=submit]");
        await page.locator("#publish-result.error").waitFor({ timeout: 5000 });
        assert.match(await page.locator("#publish-result").textContent(), /^not published: forbidden: channel `news` is not allowed/);
      });
      assert.equal(received.messages.length, 1);
    } finally {
      await listener.close();
    }
  });
});

describe("the dashboard across a gateway restart", () => {
  const gateway = dashboardGateway();
  before(() => gateway.start());
  after(() => gateway.dispose());

  test("reconnects by itself after the gateway is killed and started again", { timeout: TEST_TIMEOUT }, async () => {
    await withDashboard(gateway, "restart", async ({ page }) => {
      await waitForState(page, "connected");
      await waitForSubscribed(page, "demo");
      const before = unique("before the restart");
      await gateway.publish("demo", { text: before });
      await waitForMessage(page, "demo", before);

      await gateway.stop("SIGKILL");
      // The page notices, and at least one attempt fails while the gateway is down.
      await page.waitForFunction(() => Number(document.getElementById("attempts").textContent) >= 1, null, { timeout: 10000 });
      assert.notEqual(await page.locator("#state").getAttribute("data-state"), "connected");
      assert.match(await page.locator("#log").textContent(), /disconnected \(code 1006/);

      await gateway.restart();
      await waitForState(page, "connected", 15000);
      await waitForSubscribed(page, "demo", { replies: 2 });
      assert.equal(await page.locator("#reconnects").textContent(), "1");
      assert.equal(await page.locator("#attempts").textContent(), "0");
      // The new gateway has none of the old one's history, and the page says so.
      assert.match(
        await page.locator('#subscriptions li[data-subscription="demo"] .note').textContent(),
        /^history lost \(.+\); live from here$/,
      );

      const afterText = unique("after the restart");
      const { offset } = await gateway.publish("demo", { text: afterText });
      const shown = await waitForMessage(page, "demo", afterText, 2000);
      assert.ok(shown.startsWith(`#${offset}`), shown);
      const listed = await messagesOf(page, "demo");
      assert.equal(listed.length, 2);
      assert.ok(listed[0].includes(afterText) && listed[1].includes(before), JSON.stringify(listed));
    });
  });
});

describe("the dashboard's short forms for tags and filters", () => {
  test("parse into the protocol's JSON", () => {
    assert.equal(parseFilter("  "), undefined);
    assert.deepEqual(parseFilter("color=red"), { eq: ["color", "red"] });
    assert.deepEqual(parseFilter("size = s | m"), { in: ["size", ["s", "m"]] });
    assert.deepEqual(parseFilter("kind!=test"), { not: { eq: ["kind", "test"] } });
    assert.deepEqual(parseFilter("a=1, b!=2|3"), { and: [{ eq: ["a", "1"] }, { not: { in: ["b", ["2", "3"]] } }] });
    assert.deepEqual(parseFilter('{"or": [{"eq": ["a", "1"]}]}'), { or: [{ eq: ["a", "1"] }] });
    assert.throws(() => parseFilter("color"), /is not key=value/);
    assert.throws(() => parseFilter("=red"), /is not key=value|has no key/);
    assert.throws(() => parseFilter("{nope"), /filter is not JSON/);
    assert.equal(parseTags(""), undefined);
    assert.deepEqual(parseTags("color=red, size = m"), { color: "red", size: "m" });
    assert.deepEqual(parseTags('{"a": "b"}'), { a: "b" });
    assert.throws(() => parseTags("a=1, a=2"), /given twice/);
    assert.throws(() => parseTags('{"a": 1}'), /must be a string/);
    assert.throws(() => parseTags("flag"), /is not key=value/);
  });
});
