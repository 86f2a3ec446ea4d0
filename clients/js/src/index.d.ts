// Types for @sluice/client (Sluice client protocol v1).

/** Protocol version this client speaks. */
export declare const PROTOCOL_VERSION: 1;

/** A connection that stayed open at least this long (ms) resets the reconnect back-off. */
export declare const STABLE_CONNECTION_MS: number;

/** Error codes the gateway sends in `{"op":"error"}` frames. */
export type GatewayErrorCode =
  | "bad_request"
  | "unknown_op"
  | "bad_channel"
  | "already_subscribed"
  | "not_subscribed"
  | "limit"
  | "forbidden"
  | "unavailable"
  | "rate_limited"
  | "closed";

/** Error codes this client produces itself. */
export type ClientErrorCode =
  /** No answer within `requestTimeout`. A publish may still have been applied. */
  | "timeout"
  /** Not connected, or the connection ended before the answer. */
  | "disconnected"
  /** The publish frame is over `maxMessageSize`; nothing was sent. */
  | "too_big"
  /** `subscribe()` on a channel or pattern this client already holds (thrown). */
  | "already_subscribed"
  /** `sub.ready` of a subscription unsubscribed before its first reply. */
  | "unsubscribed"
  /** The `token` function threw or rejected (reported on the `error` event). */
  | "token"
  /**
   * An automatic token refresh failed (reported on the `error` event): `cause` is why
   * (`forbidden`, `timeout`, `token`, ...) and `willRetry` whether another attempt is
   * scheduled before the token expires.
   */
  | "refresh";

export type SluiceErrorCode = GatewayErrorCode | ClientErrorCode;

export declare class SluiceError extends Error {
  constructor(
    code: string,
    message: string,
    details?: { id?: number; closeCode?: number; closeReason?: string; cause?: unknown },
  );
  readonly name: "SluiceError";
  /** The gateway's `error` code, or one of the client's (see `ClientErrorCode`). */
  readonly code: SluiceErrorCode | (string & {});
  /** The request id, when the error answers a request. */
  readonly id?: number;
  /** For `disconnected`: the close code of the connection that ended. */
  readonly closeCode?: number;
  readonly closeReason?: string;
  /**
   * Set on `unavailable` and `rate_limited` subscribe refusals, which the client retries by
   * itself, and on `refresh` errors: whether the client tries again.
   */
  willRetry?: boolean;
}

/** Close codes after which the client reconnects by itself, with what they mean. */
export declare const RECONNECT_CLOSE_CODES: Readonly<Record<number, string>>;
/** Close codes after which the client reconnects only when `token` is a function (4003). */
export declare const TOKEN_CLOSE_CODES: Readonly<Record<number, string>>;
/** Close codes that stop the client; other 3000–4999 codes (but 4008) stop it too. */
export declare const FINAL_CLOSE_CODES: Readonly<Record<number, string>>;

/**
 * The default reconnect decision for a close the client did not initiate; `tokenFunction`
 * says whether `token` is a function (which makes 4003 reconnect).
 */
export declare function shouldReconnect(code: number, context?: { tokenFunction?: boolean }): boolean;

/** How many times a failed automatic token refresh is tried again before the token expires (3). */
export declare const REFRESH_RETRIES: number;

/**
 * The default `refreshMargin`, for a token with `lifetime` ms left: a tenth of it, at least
 * 5 s, at most half of it, never negative (1 h → 6 min, 60 s → 6 s, 8 s → 4 s, 2 s → 1 s).
 */
export declare function defaultRefreshMargin(lifetime: number): number;

/**
 * A JWT's `exp` in ms since the Unix epoch (the signature is not checked), or `null` for a
 * token that is not a JWT or has no numeric `exp`.
 */
export declare function tokenExpiry(token: unknown): number | null;

/** Full-jitter exponential back-off: uniform in [0, min(max, min * 2^attempt)). */
export declare function backoffDelay(
  attempt: number,
  min: number,
  max: number,
  random?: () => number,
): number;

/** Whether `channel` is a prefix pattern (ends in `*`). */
export declare function isPattern(channel: string): boolean;
/** Whether the channel or pattern `subscription` matches the concrete `channel`. */
export declare function matchesChannel(subscription: string, channel: string): boolean;

export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

/** A WebSocket constructor compatible with the WHATWG API (browsers, undici, `ws`). */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
}

export interface SluiceClientOptions {
  /**
   * Sent as the `token` query parameter of every connection attempt (browsers cannot set
   * headers on a WebSocket). A function is called again before every attempt, so it can
   * return a fresh token; if it throws, the attempt counts as failed (an `error` event
   * with code `token`) and is retried after the back-off.
   */
  token?: TokenSource;
  /**
   * With a token function: refresh the token on the open connection before it expires, so
   * the gateway never closes it with 4003 (default `true`). The expiry is the JWT's `exp`
   * after a connect, then each refresh reply's `expires_at`; a token that is not a JWT, or
   * has no `exp`, is not refreshed (4003 then reconnects with a new token). A fixed string
   * token is never refreshed by the client.
   */
  autoRefresh?: boolean;
  /**
   * How long before the expiry the automatic refresh runs, ms, or a function of the
   * lifetime the token has left (ms). Default `defaultRefreshMargin`: a tenth of the
   * lifetime, at least 5 s, at most half. A token already within the margin after a
   * connect is refreshed at once; one within it right after a refresh, at half its
   * remaining life (not in a loop). The expiry is compared with this machine's clock.
   */
  refreshMargin?: number | ((lifetime: number) => number);
  /** Defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Back-off base, ms (default 250). */
  minReconnectDelay?: number;
  /** Back-off cap, ms (default 10000). */
  maxReconnectDelay?: number;
  /** Time a request waits for its answer, ms (default 5000; 0 = forever). */
  requestTimeout?: number;
  /** Time the WebSocket handshake may take, ms (default 10000; 0 = forever). */
  connectTimeout?: number;
  /**
   * Largest publish frame, in bytes of UTF-8 JSON, that is sent; larger ones reject with
   * `too_big` instead of getting the connection closed with 1009. Set it to the gateway's
   * `server.max_message_size`. Default: no limit.
   */
  maxMessageSize?: number;
  /**
   * `true` (default): reconnect per the close code table. `false`: never. A function
   * decides per close; returning `undefined` falls back to the table.
   */
  reconnect?: boolean | ((close: { code: number; reason: string }) => boolean | undefined);
  /** Random source for the jitter (tests). Default `Math.random`. */
  random?: () => number;
}

export type ConnectionState = "connecting" | "connected" | "disconnected";

export type StateEvent =
  | { state: "connecting"; attempt: number }
  | { state: "connected" }
  | {
      state: "disconnected";
      /** The close code (1006 for a failed handshake, a network error or a client-side timeout). */
      code: number;
      reason: string;
      /** Whether a reconnect is scheduled. */
      willReconnect: boolean;
      /** When `willReconnect`: ms until the next attempt. */
      delay?: number;
    };

export interface ClientEvents {
  state: StateEvent;
  /** Errors with nobody else to report to: a handler that threw, an `error` frame without
   *  an id, a failed token function, a resubscribe refused with no `onError`, a failed
   *  automatic token refresh (code `refresh`). */
  error: unknown;
}

export interface Message<T = unknown> {
  /** The concrete channel (also for pattern subscriptions). */
  channel: string;
  offset: number;
  data: T;
  /** The publication's tags, when it has any. */
  tags?: Record<string, string>;
  /** Only when an outbound plugin set it. */
  meta?: unknown;
}

/** A condition over a publication's tags, evaluated by the gateway. */
export type Filter =
  | { eq: [key: string, value: string] }
  | { in: [key: string, values: string[]] }
  | { and: Filter[] }
  | { or: Filter[] }
  | { not: Filter };

/** Whether `tags` pass `filter`, as the gateway decides it (no filter passes everything). */
export declare function admits(filter: Filter | undefined, tags?: Record<string, string>): boolean;

export interface PublishOptions {
  /** A flat map of strings (at most 32; keys 1–64 bytes, values up to 256) for subscribers' filters. */
  tags?: Record<string, string>;
}

export interface Position {
  epoch: string;
  offset: number;
}

export interface SubscribeResult {
  channel: string;
  /** `""` for patterns. */
  epoch: string;
  /** The channel's latest offset when subscribed (0 for patterns). */
  offset: number;
  /** Whether the missed messages follow (only when `recover` was sent). */
  recovered: boolean;
  /** Why recovery failed, when it was asked for and failed. */
  reason?: string;
  /** Whether an earlier subscribe of this subscription had succeeded (a resubscribe after a reconnect). */
  resubscribed: boolean;
}

export interface RecoveryFailure {
  channel: string;
  /** The gateway's reason: epoch changed, offset ahead of the channel, history too short. */
  reason: string;
  /** The channel's current epoch and latest offset; live messages continue from here. */
  epoch: string;
  offset: number;
  /** The position recovery was asked from. */
  previous: Position;
}

export interface SubscribeOptions<T = unknown> {
  /** Each message once, in offset order per channel. */
  onMessage?: (message: Message<T>) => void;
  /** After every successful subscribe reply: the first, and each resubscribe. */
  onSubscribed?: (result: SubscribeResult) => void;
  /**
   * Recovery was asked for (after a reconnect, or with `recover`) and the gateway could
   * not replay every missed message: reload the state from your backend. Live messages
   * continue after it. Never called for patterns, which cannot recover.
   */
  onRecoveryFailed?: (failure: RecoveryFailure) => void;
  /**
   * The gateway refused the subscription (`forbidden`, `bad_channel`, `limit`, ...): it is
   * removed. For `unavailable` (`error.willRetry`), it is retried after a back-off.
   */
  onError?: (error: SluiceError) => void;
  /** Start from a position saved earlier (exact channels only). */
  recover?: Position;
  /** Deliver only messages whose tags pass (the gateway filters, also on recovery). */
  filter?: Filter;
}

export declare class Subscription<T = unknown> {
  private constructor();
  readonly channel: string;
  readonly isPattern: boolean;
  readonly state: "subscribing" | "subscribed" | "unsubscribed" | "failed";
  /** The last position seen (exact channels, after the first reply), to save and pass as `recover`. */
  readonly position: Position | null;
  /** Resolves on the first successful reply; rejects if refused or unsubscribed before. */
  readonly ready: Promise<SubscribeResult>;
  /** Stops delivery at once; always resolves. */
  unsubscribe(): Promise<void>;
}

export declare class SluiceClient {
  constructor(url: string | URL, options?: SluiceClientOptions);
  readonly state: ConnectionState;
  readonly subscriptions: Subscription[];
  /** Resolves once connected (after any retries); rejects if stopped first. */
  connect(): Promise<void>;
  /** Closes and stops reconnecting; subscriptions are kept for a later `connect()`. */
  close(code?: number, reason?: string): Promise<void>;
  on<E extends keyof ClientEvents>(event: E, listener: (payload: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: (payload: ClientEvents[E]) => void): void;
  /** Throws `SluiceError("already_subscribed")` for a channel this client already holds. */
  subscribe<T = unknown>(channel: string, options?: SubscribeOptions<T>): Subscription<T>;
  publish(channel: string, data: unknown, options?: PublishOptions): Promise<{ offset: number }>;
  /**
   * Presents a new token on the open connection (without an argument: the `token`
   * function's). Resolves to the new expiry, ms since the Unix epoch or `null`; rejects
   * with `forbidden` (the old token stays in force), `bad_request`, `disconnected` or
   * `timeout`. With a token function, schedules the next automatic refresh from the reply.
   */
  refresh(token?: string): Promise<{ expires_at: number | null }>;
}

export default SluiceClient;
