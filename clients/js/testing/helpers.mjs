// Test helpers: start the real `sluice` binary on port 0, publish over its HTTP API, a TCP
// proxy that can be paused and cut, and bounded waits. Loopback only.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SluiceClient } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, "../../..");
export const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO_ROOT, "target/debug/sluice");
export const API_KEY = "test-key";

if (typeof globalThis.WebSocket !== "function") {
  throw new Error("no global WebSocket: run the tests with node 22+, or node 20 with --experimental-websocket");
}

/** A gateway config without plugins; `server` adds `[server]` keys (TOML values as strings). */
export function configText({ server = {}, channels } = {}) {
  const serverLines = Object.entries({ listen: '"127.0.0.1:0"', plugin_cache: '""', ...server })
    .map(([k, v]) => `${k} = ${v}`)
    .join("\n");
  return `[server]
${serverLines}

[api]
keys = ["${API_KEY}"]

[[routes]]
path = "/ws"
plugins = []

${
  channels ??
  `[[channels]]
pattern = "*"
history_size = 100
history_ttl = "5m"`
}
`;
}

const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }
});

/**
 * A running gateway (`options`: `server`, `channels` for the config, or `config` for the
 * whole config text; `log` for SLUICE_LOG, default `info`). `start()` spawns it (again, on
 * the same address after `stop()` if `listen` is given), waiting for its `listening` log
 * line.
 */
export class Gateway {
  constructor(options = {}) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), "sluice-js-test-"));
    this.configPath = path.join(this.dir, "gateway.toml");
    writeFileSync(this.configPath, options.config ?? configText(options));
    this.child = null;
    this.addr = null;
    this.log = "";
    this.logFilter = options.log ?? "info";
  }

  get wsUrl() {
    return `ws://${this.addr}/ws`;
  }

  get httpUrl() {
    return `http://${this.addr}`;
  }

  get port() {
    return Number(this.addr.split(":").pop());
  }

  /** Starts the binary on `listen` (default port 0); resolves to the bound `IP:PORT`. */
  async start(listen = "127.0.0.1:0", { timeout = 15000 } = {}) {
    if (!existsSync(SLUICE_BIN)) {
      throw new Error(`no gateway binary at ${SLUICE_BIN} (build it with cargo build, or set SLUICE_BIN)`);
    }
    const child = spawn(SLUICE_BIN, ["--config", this.configPath, "--listen", listen], {
      env: { ...process.env, SLUICE_LOG: this.logFilter, NO_COLOR: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(child);
    this.child = child;
    child.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      });
    });
    child.stderr.setEncoding("utf8");
    return await new Promise((resolve, reject) => {
      let buffered = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`gateway did not log "listening" within ${timeout} ms:\n${this.log}`));
      }, timeout);
      child.stderr.on("data", (chunk) => {
        this.log += chunk;
        buffered += chunk;
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const match = line.includes("listening") && /\baddr=(\S+:\d+)/.exec(line);
          if (match) {
            clearTimeout(timer);
            this.addr = match[1];
            resolve(this.addr);
          }
        }
      });
      child.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(Object.assign(new Error(`gateway exited (code ${code}, signal ${signal}) before listening:\n${this.log}`), { exitCode: code }));
      });
    });
  }

  /** Starts it again on the address it had, retrying while the port is still busy. */
  async restart({ attempts = 20 } = {}) {
    const addr = this.addr;
    for (let i = 0; ; i++) {
      try {
        return await this.start(addr);
      } catch (error) {
        // Exit status 1: the address could not be bound (yet).
        if (error.exitCode !== 1 || i + 1 >= attempts) throw error;
        await sleep(100);
      }
    }
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL after `timeout`). */
  async stop(signal = "SIGTERM", { timeout = 15000 } = {}) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    const result = await child.exited;
    clearTimeout(timer);
    return result;
  }

  async dispose() {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** `POST /api/publish` of one message (`extra` adds fields, e.g. `{tags}`); resolves to
   * the parsed answer. */
  async publish(channel, data, extra = {}) {
    const response = await fetch(`${this.httpUrl}/api/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ channel, data, ...extra }),
      signal: AbortSignal.timeout(5000),
    });
    const body = await response.json();
    if (response.status !== 200) {
      throw new Error(`publish to ${channel} answered ${response.status}: ${JSON.stringify(body)}`);
    }
    return body;
  }
}

/**
 * A TCP proxy from a free loopback port to `target` (`IP:PORT`). `pause()` stops
 * forwarding in both directions (bytes wait in the kernel), `resume()` forwards again,
 * `cut()` destroys every connection (the client sees 1006), `refuse(true)` drops new
 * connections at once. `requests` holds the first line of each HTTP request seen.
 */
export class Proxy {
  constructor(target) {
    this.target = target;
    this.pairs = new Set();
    this.requests = [];
    this.refusing = false;
    this.paused = false;
    this.server = net.createServer((client) => this._accept(client));
  }

  async listen() {
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    this.addr = `127.0.0.1:${this.server.address().port}`;
    return this.addr;
  }

  get wsUrl() {
    return `ws://${this.addr}/ws`;
  }

  _accept(client) {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const [host, port] = [this.target.slice(0, this.target.lastIndexOf(":")), Number(this.target.split(":").pop())];
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.once("data", (chunk) => this.requests.push(chunk.toString("latin1").split("\r\n")[0]));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    if (this.paused) this._pausePair(pair);
  }

  _pausePair({ client, upstream }) {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  }

  pause() {
    this.paused = true;
    for (const pair of this.pairs) this._pausePair(pair);
  }

  resume() {
    this.paused = false;
    for (const { client, upstream } of this.pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  }

  refuse(on) {
    this.refusing = on;
  }

  cut() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  get connections() {
    return this.pairs.size;
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` until it returns a truthy value; fails after `timeout` ms. */
export async function waitFor(predicate, { timeout = 5000, interval = 10, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** Resolves with the first `state` event matching `predicate`; fails after `timeout`. */
export function nextState(client, predicate, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for a state event`));
    }, timeout);
    const off = client.on("state", (event) => {
      if (predicate(event)) {
        clearTimeout(timer);
        off();
        resolve(event);
      }
    });
  });
}

/** Rejects with a timeout error if `promise` does not settle within `ms`. */
export function within(promise, ms, what = "promise") {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A subscription's received messages, with a way to wait for a number of them. */
export function collector() {
  const messages = [];
  return {
    messages,
    onMessage: (message) => messages.push(message),
    until: (count, timeout = 5000) =>
      waitFor(() => messages.length >= count, { timeout, what: `${count} messages (have ${messages.length})` }),
  };
}

/** Clients with the tests' usual reconnect settings (override per pool or per client), all
 * closed by `closeAll()`. */
export class ClientPool {
  constructor(defaults = {}) {
    this.defaults = { minReconnectDelay: 20, maxReconnectDelay: 200, requestTimeout: 3000, ...defaults };
    this.clients = [];
  }

  /** A new client for `url`. */
  make(url, options = {}) {
    return this.track(new SluiceClient(url, { ...this.defaults, ...options }));
  }

  /** Closes `client` with the others at the end. */
  track(client) {
    this.clients.push(client);
    return client;
  }

  async closeAll() {
    await Promise.all(this.clients.map((client) => client.close()));
  }
}

/** A started gateway with a started `Proxy` in front of it. */
export async function proxiedGateway(options) {
  const gateway = new Gateway(options);
  await gateway.start();
  const proxy = new Proxy(gateway.addr);
  await proxy.listen();
  return { gateway, proxy };
}
