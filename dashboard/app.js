// The live dashboard: one SluiceClient on this gateway's public `/demo/ws` route (no token;
// its chain admits the channels `demo` and `demo.*` only). Shows the connection state, a
// rolling chart of messages per second, the latest messages per channel, and forms to
// subscribe (with a tag filter) and to publish. Everything it shows is written with
// textContent: message data is never parsed as HTML.

import { SluiceClient } from "/lib/sluice/index.js";
import { parseFilter, parseTags } from "./filter.js";

const WS_PATH = "/demo/ws";
/** The demo config's API key (gateway.toml's fallback), shown in the curl command. */
const DEMO_API_KEY = "sluice-demo-api-key";
const DEFAULT_CHANNELS = ["demo"];
const KEEP_PER_CHANNEL = 20;
const CHART_SECONDS = 60;
const LOG_LINES = 40;

const $ = (id) => document.getElementById(id);

/** `el("li", {className: "x", dataset: {a: "1"}}, "text", child)` */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const clock = (ms = Date.now()) => new Date(ms).toLocaleTimeString([], { hour12: false });

function log(text) {
  const list = $("log");
  list.prepend(el("li", {}, el("time", {}, clock()), " ", text));
  while (list.children.length > LOG_LINES) list.lastElementChild.remove();
}

// ---- connection ------------------------------------------------------------------------

const client = new SluiceClient(new URL(WS_PATH, location.href), { maxReconnectDelay: 5000 });
let everConnected = false;
let reconnects = 0;
/** `channel#offset` of what this page published on the current connection. */
const ownOffsets = new Set();

client.on("state", (event) => {
  const state = $("state");
  state.dataset.state = event.state;
  state.textContent = event.state;
  let detail = "";
  if (event.state === "connecting") {
    $("attempts").textContent = String(event.attempt);
    detail = event.attempt > 0 ? `attempt ${event.attempt + 1}` : "";
  } else if (event.state === "connected") {
    if (everConnected) $("reconnects").textContent = String(++reconnects);
    everConnected = true;
    $("attempts").textContent = "0";
    ownOffsets.clear();
    detail = `${location.host}${WS_PATH}`;
  } else {
    detail = `code ${event.code}${event.reason ? ` · ${event.reason}` : ""} · ${
      event.willReconnect ? `retry in ${(event.delay / 1000).toFixed(1)} s` : "stopped"
    }`;
  }
  $("state-detail").replaceChildren(detail);
  if (event.state === "disconnected" && !event.willReconnect) {
    $("state-detail").append(" ", el("button", { type: "button", id: "reconnect", textContent: "connect", onclick: connect }));
  }
  if (event.state !== "connecting" || event.attempt === 0) log(`${event.state}${detail ? ` (${detail})` : ""}`);
  refreshSubscriptions();
});

client.on("error", (error) => log(`error: ${error?.code ? `${error.code}: ` : ""}${error?.message ?? error}`));

function connect() {
  client.connect().catch(() => {}); // a final close is shown by the state event
}

// ---- subscriptions ---------------------------------------------------------------------

/** channel or pattern -> {sub, filterText, filter, replies, row} */
const subscriptions = new Map();

function subscribe(channel, filterText = "") {
  const filter = parseFilter(filterText); // throws on a bad filter, before anything changes
  const previous = subscriptions.get(channel);
  if (previous) {
    previous.sub.unsubscribe();
    previous.row.remove();
    subscriptions.delete(channel);
  }
  const entry = { channel, filterText: filterText.trim(), filter, replies: 0, note: "" };
  const options = {
    onMessage: (message) => received(message),
    onSubscribed: (result) => {
      entry.replies++;
      if (result.resubscribed && !result.reason) entry.note = "";
      refreshSubscriptions();
      if (result.resubscribed) log(`resubscribed to ${channel}${result.recovered ? ", nothing missed" : ""}`);
    },
    onRecoveryFailed: ({ reason }) => {
      entry.note = `history lost (${reason}); live from here`;
      log(`${channel}: ${entry.note}`);
    },
    onError: (error) => {
      entry.note = `${error.code}: ${error.message}${error.willRetry ? " (retrying)" : ""}`;
      log(`${channel} refused: ${entry.note}`);
      refreshSubscriptions();
    },
  };
  if (filter) options.filter = filter;
  entry.sub = client.subscribe(channel, options);
  entry.row = el("li", { dataset: { subscription: channel } });
  $("subscriptions").append(entry.row);
  subscriptions.set(channel, entry);
  refreshSubscriptions();
}

function unsubscribe(channel) {
  const entry = subscriptions.get(channel);
  if (!entry) return;
  subscriptions.delete(channel);
  entry.row.remove();
  entry.sub.unsubscribe();
  log(`unsubscribed from ${channel}`);
}

function refreshSubscriptions() {
  for (const entry of subscriptions.values()) {
    const { row, sub } = entry;
    row.dataset.state = sub.state;
    row.dataset.replies = String(entry.replies);
    const parts = [
      el("code", { className: "channel" }, entry.channel),
      entry.filterText
        ? el("span", { className: "filter", title: JSON.stringify(entry.filter) }, entry.filterText)
        : el("span", { className: "filter none" }, "all messages"),
      el("span", { className: `status ${sub.state}` }, sub.state),
      entry.note ? el("span", { className: "note" }, entry.note) : null,
      el("button", {
        type: "button",
        className: "remove",
        title: `unsubscribe from ${entry.channel}`,
        textContent: "×",
        onclick: () => unsubscribe(entry.channel),
      }),
    ];
    row.replaceChildren(...parts.filter(Boolean));
  }
}

$("subscribe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const channel = $("subscribe-channel").value.trim();
  const error = $("subscribe-error");
  error.textContent = "";
  try {
    subscribe(channel, $("subscribe-filter").value);
    log(`subscribing to ${channel}${$("subscribe-filter").value.trim() ? ` where ${$("subscribe-filter").value.trim()}` : ""}`);
  } catch (failure) {
    error.textContent = failure.message;
  }
});

// ---- messages --------------------------------------------------------------------------

function received(message) {
  countForChart();
  const key = `${message.channel}#${message.offset}`;
  if (ownOffsets.has(key)) {
    // The channel echoes our own publications (exclude_publisher = false): it is listed already.
    ownOffsets.delete(key);
    return;
  }
  show(message, false);
}

function channelSection(channel) {
  const messages = $("messages");
  for (const section of messages.querySelectorAll("section[data-channel]")) {
    if (section.dataset.channel === channel) return section;
  }
  messages.querySelector(".empty")?.remove();
  const section = el(
    "section",
    { className: "channel", dataset: { channel, count: "0" } },
    el("h3", {}, el("code", {}, channel), " ", el("small", { className: "count" }, "0 messages")),
    el("ol", { className: "list" }),
  );
  messages.append(section);
  return section;
}

function show({ channel, offset, data, tags, meta }, own) {
  const section = channelSection(channel);
  const count = Number(section.dataset.count) + 1;
  section.dataset.count = String(count);
  section.querySelector(".count").textContent = `${count} message${count === 1 ? "" : "s"}`;
  const tagList = tags && Object.keys(tags).length > 0
    ? el("span", { className: "tags" }, ...Object.entries(tags).map(([k, v]) => el("span", { className: "tag" }, `${k}=${v}`)))
    : null;
  const from = own ? "sent" : typeof meta?.publisher === "string" ? meta.publisher : null;
  const item = el(
    "li",
    { className: own ? "own" : "", dataset: { offset: String(offset) } },
    el("span", { className: "offset" }, `#${offset}`),
    el("time", {}, clock()),
    el("code", { className: "data" }, JSON.stringify(data)),
    tagList,
    from ? el("span", { className: "from" }, from) : null,
  );
  const list = section.querySelector("ol");
  list.prepend(item);
  while (list.children.length > KEEP_PER_CHANNEL) list.lastElementChild.remove();
}

// ---- chart -----------------------------------------------------------------------------

/** Messages received per wall-clock second (`Math.floor(ms / 1000)`), for the last minute. */
const perSecond = new Map();
let total = 0;

function countForChart() {
  const second = Math.floor(Date.now() / 1000);
  perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  total++;
  $("total").textContent = String(total);
  $("rate-chart").dataset.total = String(total);
}

/** 1, 2, 5, 10, 20, 50, ...: the smallest at or above `value`. */
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function drawChart() {
  const now = Math.floor(Date.now() / 1000);
  for (const second of perSecond.keys()) if (second <= now - CHART_SECONDS) perSecond.delete(second);
  const values = Array.from({ length: CHART_SECONDS }, (_, i) => perSecond.get(now - CHART_SECONDS + 1 + i) ?? 0);
  const peak = Math.max(...values);
  $("rate-now").textContent = String(values[CHART_SECONDS - 2]); // the last complete second
  $("rate-peak").textContent = String(peak);

  const canvas = $("rate-chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const color = (name) => style.getPropertyValue(name).trim() || "gray";
  const pad = { left: 34, right: 6, top: 8, bottom: 18 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const top = niceCeiling(Math.max(1, peak));

  context.font = `11px ${style.fontFamily}`;
  context.textBaseline = "middle";
  context.textAlign = "right";
  for (const fraction of [0, 0.5, 1]) {
    const y = Math.round(pad.top + plotHeight * (1 - fraction)) + 0.5;
    context.strokeStyle = color("--chart-grid");
    context.beginPath();
    context.moveTo(pad.left, y);
    context.lineTo(width - pad.right, y);
    context.stroke();
    context.fillStyle = color("--chart-text");
    const label = top * fraction;
    context.fillText(Number.isInteger(label) ? String(label) : label.toFixed(1), pad.left - 6, y);
  }
  const slot = plotWidth / CHART_SECONDS;
  const gap = slot > 4 ? 1 : 0;
  values.forEach((value, i) => {
    if (value === 0) return;
    const barHeight = Math.max(1, (value / top) * plotHeight);
    context.fillStyle = color(i === CHART_SECONDS - 1 ? "--chart-bar-now" : "--chart-bar");
    context.fillRect(pad.left + i * slot + gap, pad.top + plotHeight - barHeight, slot - 2 * gap, barHeight);
  });
  context.fillStyle = color("--chart-text");
  context.textBaseline = "bottom";
  context.textAlign = "left";
  context.fillText(`-${CHART_SECONDS} s`, pad.left, height);
  context.textAlign = "right";
  context.fillText("now", width - pad.right, height);
}

// ---- publishing ------------------------------------------------------------------------

/** `text` as one single-quoted shell word. */
const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

function updateCurl() {
  const channel = $("publish-channel").value.trim() || "demo";
  let body;
  try {
    const message = { channel, data: JSON.parse($("publish-data").value) };
    const tags = parseTags($("publish-tags").value);
    if (tags) message.tags = tags;
    body = shellQuote(JSON.stringify(message));
  } catch {
    body = "'…' (fix the form's data or tags first)";
  }
  $("curl").textContent = [
    `curl -X POST ${location.origin}/api/publish \\`,
    `     -H 'Authorization: Bearer ${DEMO_API_KEY}' -H 'Content-Type: application/json' \\`,
    `     -d ${body}`,
  ].join("\n");
}

$("publish-form").addEventListener("input", updateCurl);
$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("publish-result");
  result.className = "";
  const channel = $("publish-channel").value.trim();
  let data;
  let tags;
  try {
    data = JSON.parse($("publish-data").value);
  } catch (error) {
    result.className = "error";
    result.textContent = `data is not JSON: ${error.message}`;
    return;
  }
  try {
    tags = parseTags($("publish-tags").value);
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
    return;
  }
  try {
    const { offset } = await client.publish(channel, data, tags ? { tags } : undefined);
    ownOffsets.add(`${channel}#${offset}`);
    result.textContent = `published to ${channel} as #${offset}`;
    show({ channel, offset, data, tags }, true);
  } catch (error) {
    result.className = "error";
    result.textContent = `not published: ${error.code ?? "error"}: ${error.message}`;
  }
});

// ---- start -----------------------------------------------------------------------------

for (const channel of DEFAULT_CHANNELS) subscribe(channel);
updateCurl();
drawChart();
setInterval(drawChart, 500);
window.addEventListener("resize", drawChart);
connect();
