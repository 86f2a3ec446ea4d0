// The rate limiter's logic, free of any WIT import so that `node --test` can run it.

/** Milliseconds in one window. */
export const WINDOW_MS = 1000;

/**
 * Reads `{ "per_second": N }` (N a whole number from 1 to 1,000,000).
 * @param {string} text the plugin's `config` table as JSON
 * @returns {number}
 */
export function parseConfig(text) {
  let config;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw "config must be a table";
  }
  for (const key of Object.keys(config)) {
    if (key !== "per_second") throw `unknown config key \`${key}\` (expected \`per_second\`)`;
  }
  const n = config.per_second;
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw `per_second must be a whole number from 1 to 1000000, not ${JSON.stringify(n)}`;
  }
  return n;
}

/**
 * A sliding one-second window per connection: a connection may publish `perSecond`
 * messages in any 1000 ms; the next one is refused until the oldest leaves the window.
 */
export class RateLimiter {
  /** @param {number} perSecond */
  constructor(perSecond) {
    this.perSecond = perSecond;
    /** @type {Map<string, number[]>} connection id -> send times (ms), oldest first */
    this.sent = new Map();
  }

  /**
   * Records a message from `connection` at `nowMs` if it is within the limit.
   * @param {string} connection
   * @param {number} nowMs
   * @returns {boolean} whether the message may pass
   */
  allow(connection, nowMs) {
    let times = this.sent.get(connection);
    if (times === undefined) {
      times = [];
      this.sent.set(connection, times);
    }
    while (times.length > 0 && nowMs - times[0] >= WINDOW_MS) times.shift();
    if (times.length >= this.perSecond) return false;
    times.push(nowMs);
    return true;
  }

  /** Forgets a connection that has gone. @param {string} connection */
  forget(connection) {
    this.sent.delete(connection);
  }

  /** Connections tracked now. */
  get size() {
    return this.sent.size;
  }
}
