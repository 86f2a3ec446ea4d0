// Browser test harness: the repository's gateway.toml (the dashboard's static mounts and
// its public /demo/ws route), made runnable on free ports, Debian's chromium driven by
// playwright-core, and a page that records what it loaded, its errors and its WebSocket
// frames. clients/js/run-browser-tests installs both tools and sets PLAYWRIGHT_CORE.

import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { API_KEY, Gateway, REPO_ROOT } from "../testing/helpers.mjs";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = path.join(REPO_ROOT, "target/browser/screenshots");
const PLAYWRIGHT_CORE =
  process.env.PLAYWRIGHT_CORE || path.join(REPO_ROOT, "target/browser/node_modules/playwright-core/index.mjs");

/**
 * The repository's own gateway.toml, so that the tests prove the default config serves the
 * dashboard: only what cannot work in a test is rewritten (free ports, absolute paths, the
 * tests' API key, a plugin cache under target/). Each rewrite must apply, so a change to
 * gateway.toml's shape fails here loudly instead of testing something else.
 */
export function dashboardConfig() {
  let text = readFileSync(path.join(REPO_ROOT, "gateway.toml"), "utf8");
  const rewrite = (from, to) => {
    if (!text.includes(from)) throw new Error(`gateway.toml no longer contains ${JSON.stringify(from)}`);
    text = text.split(from).join(to);
  };
  const abs = (relative) => path.join(REPO_ROOT, relative);
  rewrite('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"');
  rewrite('listen = "127.0.0.1:9090"', 'listen = "127.0.0.1:0"');
  rewrite("[server]\n", `[server]\nplugin_cache = ${JSON.stringify(abs("target/browser/plugin-cache"))}\n`);
  rewrite("sluice-demo-api-key", API_KEY);
  rewrite('path = "plugins/', `path = "${abs("plugins")}/`);
  rewrite('dir = "dashboard"', `dir = ${JSON.stringify(abs("dashboard"))}`);
  rewrite('dir = "clients/js/src"', `dir = ${JSON.stringify(abs("clients/js/src"))}`);
  return text;
}

/** A gateway (not started) serving the dashboard. */
export function dashboardGateway() {
  return new Gateway({ config: dashboardConfig() });
}

/** Launches headless chromium; throws a hint when the tools are missing. */
export async function launchBrowser() {
  let chromium;
  try {
    ({ chromium } = await import(pathToFileURL(PLAYWRIGHT_CORE).href));
  } catch (error) {
    throw new Error(`cannot load playwright-core from ${PLAYWRIGHT_CORE} (run clients/js/run-browser-tests): ${error.message}`);
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30000,
  });
}

/**
 * Opens the dashboard of `gateway` in a fresh context. Requests to any other origin are
 * aborted and listed in `offsite`; `errors` collects uncaught page errors and console
 * errors; `frames` every WebSocket frame the page received, `sent` every one it sent, parsed.
 */
export async function openDashboard(browser, gateway) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const record = { context, page, errors: [], offsite: [], frames: [], sent: [] };
  const origin = gateway.httpUrl;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith("data:")) return route.continue();
    record.offsite.push(url);
    return route.abort();
  });
  page.on("pageerror", (error) => record.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    // A refused connection is reported by the browser itself while the gateway is down.
    if (message.type() === "error" && !/WebSocket connection to .* failed/.test(message.text())) {
      record.errors.push(`console: ${message.text()}`);
    }
  });
  const parse = (payload) => {
    try {
      return JSON.parse(String(payload));
    } catch {
      return { unparsed: String(payload) };
    }
  };
  page.on("websocket", (socket) => {
    socket.on("framereceived", ({ payload }) => record.frames.push(parse(payload)));
    socket.on("framesent", ({ payload }) => record.sent.push(parse(payload)));
  });
  await page.goto(`${origin}/`, { waitUntil: "load", timeout: 15000 });
  return record;
}

/** Saves a full-page screenshot as target/browser/screenshots/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits until the dashboard shows `state` (connecting, connected, disconnected). */
export async function waitForState(page, state, timeout = 10000) {
  await page.locator(`#state[data-state="${state}"]`).waitFor({ timeout });
}

/** Waits until the subscription row for `channel` is `subscribed` with at least `replies` answers. */
export async function waitForSubscribed(page, channel, { replies = 1, timeout = 10000 } = {}) {
  await page.waitForFunction(
    ([name, count]) => {
      const row = [...document.querySelectorAll("#subscriptions li")].find((li) => li.dataset.subscription === name);
      return row?.dataset.state === "subscribed" && Number(row.dataset.replies) >= count;
    },
    [channel, replies],
    { timeout },
  );
}

/** The text of each message listed for `channel`, newest first. */
export async function messagesOf(page, channel) {
  return await page.$$eval("#messages section[data-channel] li", (items, name) =>
    items.filter((li) => li.closest("section").dataset.channel === name).map((li) => li.textContent), channel);
}

/** Waits until a message of `channel` whose text contains `text` is listed; resolves to its text. */
export async function waitForMessage(page, channel, text, timeout = 2000) {
  const handle = await page.waitForFunction(
    ([name, needle]) =>
      [...document.querySelectorAll("#messages section[data-channel] li")]
        .find((li) => li.closest("section").dataset.channel === name && li.textContent.includes(needle))
        ?.textContent,
    [channel, text],
    { timeout },
  );
  return await handle.jsonValue();
}

/**
 * Inked pixels of the rate chart between `from` and `to` (fractions of its width), in a
 * band of its height between its middle and bottom grid lines, where only bars are drawn.
 */
export async function chartInk(page, from, to) {
  return await page.evaluate(
    ([left, right]) => {
      const canvas = document.getElementById("rate-chart");
      const x = Math.floor(canvas.width * left);
      const y = Math.floor(canvas.height * 0.55);
      const width = Math.max(1, Math.floor(canvas.width * (right - left)));
      const height = Math.floor(canvas.height * 0.25);
      const { data } = canvas.getContext("2d").getImageData(x, y, width, height);
      let inked = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
      return inked;
    },
    [from, to],
  );
}
