// @sluice/client: a client for Sluice's client protocol v1 (JSON text frames over WebSocket).
//
// No dependencies. Uses the global `WebSocket` (browsers, Deno, Bun, Node 22+, Node 20 with
// `--experimental-websocket`) or the constructor passed as `options.WebSocket`.
//
// What it adds over a bare WebSocket:
//  - every request (subscribe, unsubscribe, publish) is a promise correlated by `id`, with a
//    timeout, rejected with a `SluiceError` whose `code` is the gateway's error code;
//  - reconnects with exponential back-off and full jitter, following a table of close codes;
//    the token (a string, or a function called again before every attempt) goes in the
//    `token` query parameter;
//  - subscriptions survive reconnects: a channel is resubscribed with `recover` from the last
//    epoch and offset it saw, so missed messages arrive in order exactly once, or
//    `onRecoveryFailed` tells the application to reload its state;
//  - with a token function, the token is refreshed on the open connection shortly before it
//    expires (its JWT `exp`, then each refresh reply's `expires_at`), so the gateway never
//    has to close it with 4003.

/** Protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** A connection that stayed open at least this long resets the back-off. */
export const STABLE_CONNECTION_MS = 5000;

/** At most this many own publication offsets are remembered per channel (see `_own`). */
const MAX_OWN_OFFSETS = 1024;

/** A failed automatic token refresh is tried again at most this many times before the
 *  token expires (after which the gateway closes with 4003 and the client reconnects). */
export const REFRESH_RETRIES = 3;

/** The longest delay `setTimeout` takes (2^31 - 1 ms, about 24.8 days); longer ones fire
 *  at once, so a refresh further away is scheduled in steps. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * An error from the gateway (`code` is its `error` code: `bad_request`, `unknown_op`,
 * `bad_channel`, `already_subscribed`, `not_subscribed`, `limit`, `forbidden`,
 * `unavailable`, `closed`) or from this client (`timeout`, `disconnected`, `too_big`,
 * `already_subscribed`, `unsubscribed`, `token`, `refresh`).
 */
export class SluiceError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{id?: number, closeCode?: number, closeReason?: string, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "SluiceError";
    this.code = code;
    if (details.id !== undefined) this.id = details.id;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
    if (details.closeReason !== undefined) this.closeReason = details.closeReason;
  }
}

/**
 * Close codes after which the client reconnects by itself. Everything else stops it
 * (`client.connect()` starts it again). A close the client initiated itself
 * (`client.close()`) never reconnects, whatever its code.
 */
export const RECONNECT_CLOSE_CODES = Object.freeze({
  1000: "normal closure by the gateway: client_timeout, or a plugin closed with 1000",
  1001: "going away: the gateway is shutting down",
  1005: "no status code in the close frame",
  1006: "abnormal closure: network failure, or the HTTP upgrade was refused (401/403/404/503)",
  1009: "message too big: the in-flight requests are rejected, the connection is re-established",
  1011: "internal error",
  1012: "service restart",
  1013: "try again later",
  1014: "bad gateway (a proxy in front of Sluice)",
  4008: "slow consumer: the client fell behind; reconnect and recover",
});

/**
 * Close codes after which the client reconnects only when its `token` option is a
 * function, which then supplies a new token.
 */
export const TOKEN_CLOSE_CODES = Object.freeze({
  4003: "token expired without a refresh: reconnect with a new token",
});

/** Close codes that stop the client (other 3000-4999 codes stop it too, see `shouldReconnect`). */
export const FINAL_CLOSE_CODES = Object.freeze({
  1002: "protocol error",
  1003: "unsupported data",
  1007: "invalid payload data",
  1008: "policy violation: a plugin closed the connection",
  1010: "mandatory extension missing",
  1015: "TLS handshake failure",
});

/**
 * The default reconnect decision for a close code the client did not initiate.
 * @param {number} code
 * @returns {boolean}
 */
export function shouldReconnect(code, { tokenFunction = false } = {}) {
  if (Object.hasOwn(RECONNECT_CLOSE_CODES, code)) return true;
  if (Object.hasOwn(TOKEN_CLOSE_CODES, code)) return tokenFunction;
  if (Object.hasOwn(FINAL_CLOSE_CODES, code)) return false;
  // 3000-4999 (apart from 4008) are chosen by plugins or applications: a plugin that
  // closes a connection made a policy decision, like 1008. Unknown 1xxx/2xxx codes are
  // reserved by RFC 6455; treat them as transient.
  if (code >= 3000 && code <= 4999) return false;
  return true;
}

/**
 * Delay before reconnect attempt `attempt` (0, 1, 2, ...): exponential back-off with full
 * jitter, a uniformly random delay in [0, min(max, min * 2^attempt)).
 * @param {number} attempt
 * @param {number} min
 * @param {number} max
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, min, max, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/**
 * The default `refreshMargin`: how long before its expiry a token is refreshed, given the
 * `lifetime` it has left (ms). A tenth of it, but at least 5 s, and at most half of it, so
 * a short-lived token is still used for half its life rather than refreshed at once:
 * 1 h -> 6 min, 60 s -> 6 s, 8 s -> 4 s, 2 s -> 1 s.
 * @param {number} lifetime
 * @returns {number}
 */
export function defaultRefreshMargin(lifetime) {
  if (!(lifetime > 0)) return 0;
  return Math.min(lifetime / 2, Math.max(lifetime / 10, 5000));
}

/**
 * The expiry of a JWT, in ms since the Unix epoch: its payload's `exp` (seconds; floored
 * to whole ms, as the gateway's `jwt-auth` does). `null` for a token that is not three
 * base64url segments with a JSON payload, or has no numeric `exp`. The signature is not
 * checked: this reads the client's own token to know when to refresh it.
 * @param {unknown} token
 * @returns {number | null}
 */
export function tokenExpiry(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+={0,2}$/.test(parts[1])) return null;
  try {
    const base64 = parts[1].replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    const exp = payload?.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? Math.max(0, Math.floor(exp * 1000)) : null;
  } catch {
    return null;
  }
}

/** Whether `channel` is a prefix pattern (ends in `*`). */
export function isPattern(channel) {
  return channel.endsWith("*");
}

/** Whether the pattern or channel name `subscription` matches the concrete `channel`. */
export function matchesChannel(subscription, channel) {
  return isPattern(subscription)
    ? channel.startsWith(subscription.slice(0, -1))
    : subscription === channel;
}

/** A promise with its settle functions; it never causes an unhandled rejection. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  let settled = false;
  return {
    promise,
    get settled() {
      return settled;
    },
    resolve(value) {
      if (!settled) {
        settled = true;
        resolve(value);
      }
    },
    reject(error) {
      if (!settled) {
        settled = true;
        reject(error);
      }
    },
  };
}

function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function positiveNumber(value, fallback, name) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new TypeError(`options.${name} must be a non-negative number`);
  }
  return value;
}

/**
 * One subscription to a channel or a pattern, as returned by `client.subscribe`. It lives
 * until `unsubscribe()` or until the gateway refuses it, across any number of reconnects.
 */
export class Subscription {
  /** @internal */
  constructor(client, channel, options) {
    this._client = client;
    this.channel = channel;
    this.isPattern = isPattern(channel);
    this._handlers = options;
    /** `subscribing` | `subscribed` | `unsubscribed` | `failed` */
    this._state = "subscribing";
    // Last position seen on this channel (exact channels only): the epoch of the last
    // reply and the offset of the last message delivered or skipped.
    this._epoch = options.recover ? String(options.recover.epoch) : "";
    this._offset = options.recover ? Number(options.recover.offset) : 0;
    this._hasPosition = Boolean(options.recover);
    // Offsets of messages this client published itself in the current epoch and has not
    // seen yet. `exclude_publisher` works per connection, so a recovery on a new
    // connection replays our own publications to us; those are skipped (see _onMessage).
    this._own = new Set();
    this._echoesOwn = false; // the channel sends us our own publications (exclude_publisher off)
    this._active = false; // its reply arrived on the current connection
    this._sent = false; // a subscribe frame went out on the current connection
    this._retryTimer = null;
    this._retries = 0;
    this._everSubscribed = false; // a reply arrived once: later subscribes are resubscribes
    this._replayUntil = 0; // frames up to this offset are a recovery's replay, for us alone
    this._ready = deferred();
    /** Resolves with the first successful subscribe result; rejects if the gateway refuses
     *  the subscription, or it is unsubscribed before that. */
    this.ready = this._ready.promise;
  }

  /** `subscribing` (waiting for a reply, or for a connection), `subscribed`, `unsubscribed`
   *  or `failed` (refused by the gateway). */
  get state() {
    return this._state;
  }

  /** The last `{epoch, offset}` seen on this channel, to persist and pass back later as
   *  `recover`; `null` for patterns and before the first reply. */
  get position() {
    if (this.isPattern || !this._hasPosition) return null;
    return { epoch: this._epoch, offset: this._offset };
  }

  /**
   * Stops delivery at once and tells the gateway. Always resolves: when the gateway
   * confirms, when there is no connection (the gateway then holds nothing), or when the
   * request times out (the client then drops the connection, which ends the subscription
   * on the gateway too).
   * @returns {Promise<void>}
   */
  unsubscribe() {
    return this._client._unsubscribe(this);
  }
}

/**
 * A client for one gateway URL.
 */
export class SluiceClient {
  /**
   * @param {string | URL} url `ws://` or `wss://` URL of a route, e.g. `ws://127.0.0.1:8080/ws`
   *   (`http(s)://` is accepted and converted).
   * @param {object} [options] see `index.d.ts`
   */
  constructor(url, options = {}) {
    const parsed = new URL(String(url), globalThis.location?.href);
    if (parsed.protocol === "http:") parsed.protocol = "ws:";
    else if (parsed.protocol === "https:") parsed.protocol = "wss:";
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new TypeError(`unsupported URL scheme ${parsed.protocol} (use ws: or wss:)`);
    }
    this._url = parsed;
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") {
      throw new TypeError(
        "no WebSocket: pass options.WebSocket, or run on Node 22+ (Node 20: node --experimental-websocket)",
      );
    }
    this._WebSocket = WS;
    this._token = options.token;
    if (this._token !== undefined && typeof this._token !== "string" && typeof this._token !== "function") {
      throw new TypeError("options.token must be a string or a function");
    }
    this._minDelay = positiveNumber(options.minReconnectDelay, 250, "minReconnectDelay");
    this._maxDelay = Math.max(this._minDelay, positiveNumber(options.maxReconnectDelay, 10000, "maxReconnectDelay"));
    this._requestTimeout = positiveNumber(options.requestTimeout, 5000, "requestTimeout");
    this._connectTimeout = positiveNumber(options.connectTimeout, 10000, "connectTimeout");
    this._maxMessageSize = options.maxMessageSize === undefined ? Infinity : positiveNumber(options.maxMessageSize, 0, "maxMessageSize");
    this._reconnect = options.reconnect ?? true;
    this._random = options.random ?? Math.random;
    this._autoRefresh = options.autoRefresh ?? true;
    const margin = options.refreshMargin;
    if (margin !== undefined && typeof margin !== "function") positiveNumber(margin, 0, "refreshMargin");
    this._refreshMargin = margin ?? defaultRefreshMargin;

    this._state = "disconnected";
    this._listeners = new Map();
    /** @type {Map<string, Subscription>} in subscription order */
    this._subs = new Map();
    this._pending = new Map();
    this._nextId = 1;
    this._ws = null;
    this._wanted = false; // connect() called, close() not since
    this._generation = 0; // bumped on every attempt and on close(), to ignore stale callbacks
    this._attempt = 0; // consecutive failed attempts, for the back-off
    this._openedAt = 0;
    this._reconnectTimer = null;
    this._connectTimer = null;
    this._connectWaiters = [];
    this._refreshTimer = null; // the next automatic token refresh, for the current connection
    this._expiresAt = null; // when the current connection's token expires, if known (ms)
  }

  /** `connecting`, `connected` or `disconnected`. */
  get state() {
    return this._state;
  }

  /** The subscriptions, in the order they were made. */
  get subscriptions() {
    return [...this._subs.values()];
  }

  /**
   * Listens to `state` ({state, code?, reason?, willReconnect?, delay?, attempt?}) or `error`
   * (a `SluiceError` or an exception thrown by a handler). Returns a function that removes
   * the listener.
   */
  on(event, listener) {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  _emit(event, payload) {
    const listeners = this._listeners.get(event);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        listener(payload);
      } catch (error) {
        if (event !== "error") this._emit("error", error);
      }
    }
  }

  /** Calls an application handler; an exception goes to the `error` event, not up the
   *  stack (it must not break the dispatch of the frames that follow). */
  _call(handler, arg) {
    if (typeof handler !== "function") return;
    try {
      handler(arg);
    } catch (error) {
      this._emit("error", error);
    }
  }

  _setState(state, details = {}) {
    this._state = state;
    this._emit("state", { state, ...details });
  }

  /**
   * Starts connecting (and reconnecting, after failures, per the close code table).
   * Resolves once connected; rejects with a `SluiceError` (`disconnected`) if `close()` is
   * called or the connection ends with a code that does not reconnect first. Calling it
   * while connecting or connected does nothing more.
   * @returns {Promise<void>}
   */
  connect() {
    if (this._state === "connected") return Promise.resolve();
    const waiter = deferred();
    this._connectWaiters.push(waiter);
    if (!this._wanted) {
      this._wanted = true;
      this._attempt = 0;
      if (this._state === "disconnected" && this._reconnectTimer === null) this._open();
    }
    return waiter.promise;
  }

  /**
   * Closes the connection (code 1000) and stops reconnecting. Pending requests reject
   * with `disconnected`. Subscriptions are kept: `connect()` resubscribes them, recovering
   * what was missed. Resolves when the socket has closed (or after one second).
   * @param {number} [code]
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  close(code = 1000, reason = "client closed") {
    this._wanted = false;
    this._generation++;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const ws = this._ws;
    let closed = Promise.resolve();
    if (ws) closed = this._abandon(ws, code, reason);
    const wasDisconnected = this._state === "disconnected";
    this._connectionLost(code, reason);
    const error = new SluiceError("disconnected", "client closed", { closeCode: code, closeReason: reason });
    for (const waiter of this._connectWaiters.splice(0)) waiter.reject(error);
    if (!wasDisconnected) this._setState("disconnected", { code, reason, willReconnect: false });
    return closed;
  }

  /**
   * Subscribes to a channel or a pattern (a name ending in `*`). The subscription is sent
   * now if connected, else on connect, and again after every reconnect.
   * @param {string} channel
   * @param {object} [options] `{onMessage, onSubscribed, onRecoveryFailed, onError, recover, filter}`
   * @returns {Subscription}
   */
  subscribe(channel, options = {}) {
    if (typeof channel !== "string" || channel === "") {
      throw new TypeError("channel must be a non-empty string");
    }
    if (this._subs.has(channel)) {
      throw new SluiceError("already_subscribed", `already subscribed to \`${channel}\` on this client`);
    }
    if (options.recover !== undefined) {
      if (isPattern(channel)) throw new TypeError("patterns cannot be recovered");
      const { epoch, offset } = options.recover ?? {};
      if (typeof epoch !== "string" || !Number.isSafeInteger(offset) || offset < 0) {
        throw new TypeError("options.recover must be {epoch: string, offset: non-negative integer}");
      }
    }
    if (options.filter !== undefined && (options.filter === null || typeof options.filter !== "object")) {
      throw new TypeError("options.filter must be a filter object such as {eq: [key, value]}");
    }
    const sub = new Subscription(this, channel, options);
    this._subs.set(channel, sub);
    if (this._state === "connected") this._sendSubscribe(sub);
    return sub;
  }

  /**
   * Publishes `data` (any JSON value) to a channel (not a pattern). Resolves to `{offset}`.
   * Rejects with `disconnected` when not connected or when the connection ends before the
   * reply (the message may or may not have been published), `timeout` (likewise), `too_big`
   * (over `maxMessageSize`, not sent) or the gateway's code (`bad_channel`, `forbidden`,
   * `unavailable`, `closed`, ...). Never retried by the client.
   * `options.tags` (a flat object of strings) travels with the message, for subscribers'
   * filters.
   * @param {string} channel
   * @param {unknown} data
   * @param {{tags?: Record<string, string>}} [options]
   * @returns {Promise<{offset: number}>}
   */
  publish(channel, data, options = {}) {
    if (typeof channel !== "string" || channel === "") {
      return Promise.reject(new TypeError("channel must be a non-empty string"));
    }
    if (data === undefined) return Promise.reject(new TypeError("data must be a JSON value"));
    if (this._state !== "connected") {
      return Promise.reject(new SluiceError("disconnected", "not connected"));
    }
    const id = this._nextId++;
    let text;
    try {
      const frame = { op: "publish", channel, data, id };
      if (options.tags !== undefined) frame.tags = options.tags;
      text = JSON.stringify(frame);
    } catch (error) {
      return Promise.reject(new TypeError("data is not serializable to JSON", { cause: error }));
    }
    const size = this._maxMessageSize === Infinity ? 0 : utf8Length(text);
    if (size > this._maxMessageSize) {
      return Promise.reject(
        new SluiceError("too_big", `frame of ${size} bytes is over maxMessageSize (${this._maxMessageSize})`),
      );
    }
    const result = deferred();
    this._request(id, text, {
      onReply: (reply) => {
        const sub = this._subs.get(channel);
        if (sub && sub._active && !sub.isPattern && typeof reply?.offset === "number" && reply.offset > sub._offset) {
          sub._own.add(reply.offset);
          if (sub._own.size > MAX_OWN_OFFSETS) sub._own.delete(sub._own.values().next().value);
        }
        result.resolve(reply);
      },
      onError: (error) => result.reject(error),
      onTimeout: (error) => result.reject(error),
    });
    return result.promise;
  }

  /**
   * Presents a new token before the connection's current one expires (the gateway
   * closes an expired connection with 4003). The connection, its subscriptions and its
   * place in every channel are kept. Without an argument, calls the `token` function.
   * Resolves to `{expires_at}` (ms since the Unix epoch, or `null` for no expiry); rejects
   * with `forbidden` (the gateway's plugins refused the token; the old one stays in force
   * until it expires), `bad_request`, `disconnected` or `timeout`. The new token is also
   * the one the next reconnect uses when `token` is a string. With a token function (and
   * `autoRefresh`), the client calls this by itself before expiry; a successful call,
   * automatic or not, schedules the next automatic one from its `expires_at`.
   * @param {string} [token]
   * @returns {Promise<{expires_at: number | null}>}
   */
  async refresh(token) {
    if (token === undefined) {
      if (typeof this._token !== "function") throw new TypeError("refresh() needs a token, or a token function");
      token = await this._token();
    }
    if (typeof token !== "string" || token === "") throw new TypeError("token must be a non-empty string");
    if (this._state !== "connected") throw new SluiceError("disconnected", "not connected");
    const id = this._nextId++;
    const result = deferred();
    this._request(id, JSON.stringify({ op: "refresh", token, id }), {
      onReply: (reply) => {
        if (typeof this._token !== "function") this._token = token;
        // The gateway now holds this expiry for the connection (the reply came on it).
        this._scheduleRefresh(reply?.expires_at ?? null, true);
        result.resolve(reply);
      },
      onError: (error) => result.reject(error),
      onTimeout: (error) => result.reject(error),
    });
    return result.promise;
  }

  _reconnectContext() {
    return { tokenFunction: typeof this._token === "function" };
  }

  // ---- automatic token refresh -------------------------------------------------------

  /**
   * Arms the automatic refresh of the current connection's token, which expires at
   * `expiresAt` (ms since the Unix epoch; `null`: never, or unknown), replacing any armed
   * one. Only with a token function and `autoRefresh`. `refreshed` says the token was just
   * refreshed: if the new one is already within the margin, it is refreshed at half its
   * remaining life instead of at once (a margin longer than the tokens the function hands
   * out would refresh in a loop), and if our clock says it has already expired (the
   * gateway's clock disagrees), nothing is armed: a 4003 close and a reconnect follow.
   */
  _scheduleRefresh(expiresAt, refreshed) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this._expiresAt = typeof expiresAt === "number" && Number.isFinite(expiresAt) ? expiresAt : null;
    const ws = this._ws;
    if (this._expiresAt === null || typeof this._token !== "function" || !this._autoRefresh) return;
    if (!ws || this._state !== "connected") return;
    const lifetime = this._expiresAt - Date.now();
    if (refreshed && lifetime <= 0) return;
    let delay = lifetime - this._marginFor(lifetime);
    if (delay <= 0 && refreshed) delay = lifetime / 2;
    this._armRefresh(ws, Date.now() + Math.max(0, delay), 0);
  }

  /** The `refreshMargin` for a token with `lifetime` ms left; a margin function that throws
   *  or returns something else than a non-negative number is reported and the default used. */
  _marginFor(lifetime) {
    if (typeof this._refreshMargin !== "function") return this._refreshMargin;
    try {
      const margin = this._refreshMargin(lifetime);
      if (typeof margin === "number" && margin >= 0 && Number.isFinite(margin)) return margin;
      throw new TypeError(`options.refreshMargin returned ${margin}, not a non-negative number of ms`);
    } catch (error) {
      this._emit("error", error);
      return defaultRefreshMargin(lifetime);
    }
  }

  /** Runs refresh attempt `attempt` (0 first, then retries) on `ws` at time `at` (ms since
   *  the Unix epoch), in steps when it is further away than a timer can wait. */
  _armRefresh(ws, at, attempt) {
    const delay = Math.max(0, at - Date.now());
    const timer = setTimeout(() => {
      if (this._refreshTimer !== timer) return;
      this._refreshTimer = null;
      if (this._ws !== ws || this._state !== "connected") return;
      if (delay > MAX_TIMER_DELAY) this._armRefresh(ws, at, attempt);
      else this._refreshNow(ws, attempt);
    }, Math.min(delay, MAX_TIMER_DELAY));
    // Not `unref`ed: it only exists while the socket is open (which keeps a Node process
    // alive anyway), and a timer left behind by a bug should show, not hide.
    this._refreshTimer = timer;
  }

  /**
   * One automatic refresh on `ws`: a token from the token function, then `refresh()`, whose
   * reply arms the next one. On failure, an `error` event (code `refresh`, `willRetry`),
   * and up to `REFRESH_RETRIES` more attempts with back-off, each at most halfway to the
   * expiry. Nothing is reported once `ws` is gone (the reconnect path has taken over) or
   * another refresh has armed the timer meanwhile.
   */
  async _refreshNow(ws, attempt) {
    let failure;
    try {
      let token;
      try {
        token = await this._token();
      } catch (error) {
        throw new SluiceError("token", `the token function failed: ${error?.message ?? error}`, { cause: error });
      }
      if (typeof token !== "string" || token === "") {
        throw new SluiceError("token", `the token function returned ${token === "" ? "an empty string" : String(token)}, not a token`);
      }
      if (this._ws !== ws || this._refreshTimer !== null) return;
      await this.refresh(token);
      return;
    } catch (error) {
      failure = error;
    }
    if (this._ws !== ws || this._state !== "connected" || this._refreshTimer !== null) return;
    const left = this._expiresAt === null ? 0 : this._expiresAt - Date.now();
    const willRetry = attempt < REFRESH_RETRIES && left > 0;
    if (willRetry) {
      const delay = Math.min(backoffDelay(attempt, this._minDelay, this._maxDelay, this._random), left / 2);
      this._armRefresh(ws, Date.now() + delay, attempt + 1);
    }
    const error = new SluiceError("refresh", `automatic token refresh failed: ${failure?.message ?? failure}`, { cause: failure });
    error.willRetry = willRetry;
    this._emit("error", error);
  }

  // ---- connection ------------------------------------------------------------------

  async _open() {
    const generation = ++this._generation;
    this._reconnectTimer = null;
    this._setState("connecting", { attempt: this._attempt });
    let url;
    let token;
    try {
      token = typeof this._token === "function" ? await this._token() : this._token;
      if (generation !== this._generation) return;
      url = new URL(this._url);
      if (token !== undefined && token !== null && token !== "") url.searchParams.set("token", String(token));
    } catch (error) {
      if (generation !== this._generation) return;
      this._emit("error", new SluiceError("token", `the token function failed: ${error?.message ?? error}`, { cause: error }));
      this._closed(1006, "token function failed");
      return;
    }
    let ws;
    try {
      ws = new this._WebSocket(url.href);
    } catch (error) {
      this._emit("error", error);
      this._closed(1006, `cannot create the WebSocket: ${error?.message ?? error}`);
      return;
    }
    this._ws = ws;
    if (this._connectTimeout > 0) {
      this._connectTimer = setTimeout(() => {
        if (this._ws === ws && this._state === "connecting") this._drop(ws, "connect timeout");
      }, this._connectTimeout);
    }
    ws.onopen = () => {
      if (this._ws !== ws) return;
      clearTimeout(this._connectTimer);
      this._openedAt = Date.now();
      this._setState("connected");
      // The gateway does not say when the token expires: read it from the token (a JWT).
      if (this._ws === ws && typeof this._token === "function") this._scheduleRefresh(tokenExpiry(token), false);
      for (const waiter of this._connectWaiters.splice(0)) waiter.resolve();
      for (const sub of this._subs.values()) {
        if (this._ws !== ws) break; // a handler closed the client
        if (sub._retryTimer === null) this._sendSubscribe(sub);
      }
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._onFrame(event.data);
    };
    ws.onerror = () => {
      if (this._ws !== ws) return;
      // A close event should follow, but Node 20's WebSocket fires none when the
      // handshake fails (refused, 401, 404): treat an error before `open` as the end.
      if (this._state === "connecting") this._drop(ws, "connection failed");
      else {
        const timer = setTimeout(() => this._drop(ws, "socket error"), 1000);
        timer.unref?.();
      }
    };
    ws.onclose = (event) => {
      if (this._ws === ws) this._closed(event.code, event.reason ?? "");
    };
  }

  /** Detaches from `ws` and closes it; resolves when it reports its close (or after 1 s). */
  _abandon(ws, code, reason) {
    ws.onopen = ws.onmessage = null;
    const closed = new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      timer.unref?.();
      ws.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {};
    });
    try {
      if (code === 1000 || (code >= 3000 && code <= 4999)) ws.close(code, reason);
      else ws.close();
    } catch {
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    if (this._ws === ws) this._ws = null;
    return closed;
  }

  /** Gives up on `ws` (a timeout): reported as an abnormal closure (1006), reconnects. */
  _drop(ws, reason) {
    if (!ws || this._ws !== ws) return;
    this._abandon(ws, 4000, reason);
    this._closed(1006, reason);
  }

  /** Tears down per-connection state: pending requests, subscription activity, the
   *  token refresh timer. */
  _connectionLost(code, reason) {
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    this._expiresAt = null;
    this._ws = null;
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const sub of this._subs.values()) {
      sub._active = false;
      sub._sent = false;
      clearTimeout(sub._retryTimer);
      sub._retryTimer = null;
      if (sub._state === "subscribed") sub._state = "subscribing";
    }
    for (const request of pending) {
      clearTimeout(request.timer);
      const error = new SluiceError("disconnected", `connection closed (${code}${reason ? ` ${reason}` : ""}) before the reply`, {
        id: request.id,
        closeCode: code,
        closeReason: reason,
      });
      request.onLost?.(error);
    }
  }

  /** The connection ended without `close()`: reconnect or stop, per the close code. */
  _closed(code, reason) {
    const openedFor = this._openedAt ? Date.now() - this._openedAt : 0;
    this._openedAt = 0;
    this._connectionLost(code, reason);
    if (!this._wanted) return;
    let again = this._reconnect !== false;
    if (typeof this._reconnect === "function") {
      let verdict;
      try {
        verdict = this._reconnect({ code, reason });
      } catch (error) {
        this._emit("error", error);
      }
      again = typeof verdict === "boolean" ? verdict : shouldReconnect(code, this._reconnectContext());
    } else if (again) {
      again = shouldReconnect(code, this._reconnectContext());
    }
    if (!again) {
      this._wanted = false;
      const error = new SluiceError("disconnected", `connection closed (${code}${reason ? ` ${reason}` : ""})`, {
        closeCode: code,
        closeReason: reason,
      });
      for (const waiter of this._connectWaiters.splice(0)) waiter.reject(error);
      this._setState("disconnected", { code, reason, willReconnect: false });
      return;
    }
    if (openedFor >= STABLE_CONNECTION_MS) this._attempt = 0;
    const delay = backoffDelay(this._attempt, this._minDelay, this._maxDelay, this._random);
    this._attempt++;
    const generation = this._generation;
    this._reconnectTimer = setTimeout(() => {
      if (generation === this._generation && this._wanted) this._open();
    }, delay);
    this._setState("disconnected", { code, reason, willReconnect: true, delay });
  }

  // ---- requests --------------------------------------------------------------------

  /**
   * Sends a request frame `text` (already holding `id`) and routes its answer to
   * `handlers` synchronously, before any later frame is looked at (the order of a
   * subscribe reply and the messages after it matters).
   */
  _request(id, text, handlers) {
    const request = {
      id,
      onReply: handlers.onReply,
      onError: handlers.onError,
      onLost: handlers.onLost ?? handlers.onError,
      timer: null,
    };
    this._pending.set(id, request);
    if (this._requestTimeout > 0) {
      request.timer = setTimeout(() => {
        if (this._pending.get(id) !== request) return;
        this._pending.delete(id);
        handlers.onTimeout(new SluiceError("timeout", `no answer within ${this._requestTimeout} ms`, { id }));
      }, this._requestTimeout);
    }
    try {
      this._ws.send(text);
    } catch (error) {
      this._pending.delete(id);
      clearTimeout(request.timer);
      request.onLost(new SluiceError("disconnected", `cannot send: ${error?.message ?? error}`, { id, cause: error }));
    }
  }

  _onFrame(data) {
    if (typeof data !== "string") return; // the gateway only sends text frames
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this._emit("error", new SluiceError("bad_request", "the gateway sent a frame that is not JSON"));
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    switch (frame.op) {
      case "message":
        this._onMessage(frame);
        return;
      case "reply":
      case "error": {
        const request = typeof frame.id === "number" ? this._pending.get(frame.id) : undefined;
        if (!request) {
          // An answer to a request that timed out, or an error about a frame without id.
          if (frame.op === "error" && frame.id === undefined) {
            this._emit("error", new SluiceError(String(frame.code), String(frame.message ?? "")));
          }
          return;
        }
        this._pending.delete(frame.id);
        clearTimeout(request.timer);
        if (frame.op === "reply") request.onReply(frame.result ?? {});
        else request.onError(new SluiceError(String(frame.code), String(frame.message ?? ""), { id: frame.id }));
        return;
      }
      default:
        return; // unknown ops are ignored: room for the protocol to grow
    }
  }

  // ---- subscriptions ---------------------------------------------------------------

  _sendSubscribe(sub) {
    if (this._state !== "connected" || sub._sent || sub._state === "unsubscribed" || sub._state === "failed") return;
    const id = this._nextId++;
    const frame = { op: "subscribe", channel: sub.channel, id };
    const recover = !sub.isPattern && sub._hasPosition ? { epoch: sub._epoch, offset: sub._offset } : null;
    if (recover) frame.recover = recover;
    if (sub._handlers.filter !== undefined) frame.filter = sub._handlers.filter;
    const resubscribe = sub._everSubscribed === true;
    sub._sent = true;
    this._request(id, JSON.stringify(frame), {
      onReply: (result) => this._onSubscribed(sub, result, recover, resubscribe),
      onError: (error) => this._onSubscribeRefused(sub, error),
      onLost: () => {}, // resubscribed on the next connection
      // No answer: the gateway and the client may now disagree on the subscriptions.
      // Start over on a fresh connection, which resubscribes everything.
      onTimeout: () => this._drop(this._ws, "subscribe timeout"),
    });
  }

  _onSubscribed(sub, result, requested, resubscribe) {
    if (sub._state === "unsubscribed" || this._subs.get(sub.channel) !== sub) return;
    sub._active = true;
    sub._state = "subscribed";
    sub._retries = 0;
    sub._everSubscribed = true;
    const info = {
      channel: sub.channel,
      epoch: typeof result.epoch === "string" ? result.epoch : "",
      offset: typeof result.offset === "number" ? result.offset : 0,
      recovered: result.recovered === true,
      resubscribed: resubscribe,
    };
    if (typeof result.reason === "string") info.reason = result.reason;
    let failed = null;
    sub._replayUntil = 0;
    if (sub.isPattern) {
      // Nothing to track: patterns cannot recover.
    } else if (requested && info.recovered) {
      // Every missed message follows, in order, before live ones; `_offset` stays.
      sub._epoch = info.epoch;
      sub._replayUntil = info.offset;
    } else {
      if (requested) {
        failed = {
          channel: sub.channel,
          reason: info.reason ?? "not recovered",
          epoch: info.epoch,
          offset: info.offset,
          previous: requested,
        };
      }
      sub._epoch = info.epoch;
      sub._offset = info.offset;
      sub._hasPosition = true;
      sub._own.clear();
    }
    sub._ready.resolve(info);
    if (failed) this._call(sub._handlers.onRecoveryFailed, failed);
    this._call(sub._handlers.onSubscribed, info);
  }

  _onSubscribeRefused(sub, error) {
    if (sub._state === "unsubscribed" || this._subs.get(sub.channel) !== sub) return;
    sub._sent = false;
    if (error.code === "unavailable" || error.code === "rate_limited") {
      // Transient (a fail-closed plugin failed or is backing off, the broker refused, or
      // this connection subscribed too fast): try again on this connection after a back-off.
      const delay = backoffDelay(sub._retries++, this._minDelay, this._maxDelay, this._random);
      sub._retryTimer = setTimeout(() => {
        sub._retryTimer = null;
        this._sendSubscribe(sub);
      }, delay);
      error.willRetry = true;
      this._reportSubError(sub, error);
      return;
    }
    // Final: the gateway does not hold it, and asking again would get the same answer.
    this._subs.delete(sub.channel);
    sub._state = "failed";
    sub._active = false;
    const firstAnswer = !sub._ready.settled;
    sub._ready.reject(error);
    if (typeof sub._handlers.onError === "function") this._call(sub._handlers.onError, error);
    else if (!firstAnswer) this._emit("error", error);
  }

  _reportSubError(sub, error) {
    if (typeof sub._handlers.onError === "function") this._call(sub._handlers.onError, error);
    else this._emit("error", error);
  }

  _unsubscribe(sub) {
    if (sub._state === "unsubscribed" || sub._state === "failed") return Promise.resolve();
    const wasSent = sub._sent && this._state === "connected";
    sub._state = "unsubscribed";
    sub._active = false;
    clearTimeout(sub._retryTimer);
    sub._retryTimer = null;
    if (this._subs.get(sub.channel) === sub) this._subs.delete(sub.channel);
    sub._ready.reject(new SluiceError("unsubscribed", "unsubscribed before the gateway answered"));
    if (!wasSent) return Promise.resolve();
    const done = deferred();
    const id = this._nextId++;
    const finish = () => done.resolve();
    this._request(id, JSON.stringify({ op: "unsubscribe", channel: sub.channel, id }), {
      onReply: finish,
      // `not_subscribed`: the subscribe it follows was refused. Either way it is gone.
      onError: finish,
      onLost: finish,
      onTimeout: () => {
        finish();
        this._drop(this._ws, "unsubscribe timeout");
      },
    });
    return done.promise;
  }

  /**
   * Routes one message frame. The gateway sends a message once per connection even when
   * several of its subscriptions match (an exact channel and patterns), so the client
   * hands it to each matching subscription: the exact one first, then patterns in
   * subscription order. Exact channels drop any offset at or below the last one seen;
   * frames that a recovery replays (offsets up to the subscribe reply's) are for the
   * exact subscription alone. Patterns get no offset guard: a channel that only patterns
   * listen to and that keeps no history is forgotten after each message, so its offsets
   * start again at 1.
   */
  _onMessage(frame) {
    const { channel, offset } = frame;
    if (typeof channel !== "string" || typeof offset !== "number") return;
    const message = { channel, offset, data: frame.data };
    if (frame.tags !== undefined) message.tags = frame.tags;
    if (frame.meta !== undefined) message.meta = frame.meta;
    const exact = this._subs.get(channel);
    if (exact && exact._active && !exact.isPattern) {
      const replayed = offset <= exact._replayUntil;
      if (offset > exact._offset) {
        exact._offset = offset;
        let skip = false;
        if (exact._own.size > 0) {
          const own = exact._own.has(offset);
          for (const o of exact._own) if (o <= offset) exact._own.delete(o);
          // Our own publication. Live, it means the channel does not exclude the
          // publisher; replayed by a recovery on a new connection, it is skipped unless
          // the channel was seen to echo our publications.
          if (own && !replayed) exact._echoesOwn = true;
          skip = own && replayed && !exact._echoesOwn;
        }
        if (!skip && admits(exact._handlers.filter, message.tags)) this._call(exact._handlers.onMessage, message);
      }
      if (replayed) return;
      exact._replayUntil = 0;
    }
    for (const sub of [...this._subs.values()]) {
      // The gateway sends a message once for overlapping subscriptions when any of
      // their filters passes; each subscription here sees it only if its own does.
      if (sub.isPattern && sub._active && matchesChannel(sub.channel, channel) && admits(sub._handlers.filter, message.tags)) {
        this._call(sub._handlers.onMessage, message);
      }
    }
  }
}

/**
 * Whether `tags` pass `filter`, as the gateway evaluates it: `{eq: [k, v]}`,
 * `{in: [k, [v, ...]]}`, `{and: [...]}`, `{or: [...]}`, `{not: f}`; no filter passes all.
 * @param {object | undefined} filter
 * @param {Record<string, string> | undefined} tags
 */
export function admits(filter, tags = {}) {
  if (filter === undefined) return true;
  const has = (key) => Object.prototype.hasOwnProperty.call(tags, key);
  if (filter.eq) return has(filter.eq[0]) && tags[filter.eq[0]] === filter.eq[1];
  if (filter.in) return has(filter.in[0]) && filter.in[1].includes(tags[filter.in[0]]);
  if (filter.and) return filter.and.every((f) => admits(f, tags));
  if (filter.or) return filter.or.some((f) => admits(f, tags));
  if (filter.not) return !admits(filter.not, tags);
  return false;
}

export default SluiceClient;
