// Sluice plugin `rate-limit`: each client connection may publish at most `per_second`
// messages in any one second; further messages are dropped with a reason that the
// client receives as a `forbidden` error. Backend messages always pass.
//
// Exports the `sluice:plugin/handler` interface of wit/plugin.wit.
import { log, nowMs } from "sluice:plugin/host@0.1.0";
import { parseConfig, RateLimiter } from "./limiter.js";

let limiter = null;

export const handler = {
  init(config) {
    // A thrown string becomes `err(string)` and fails the plugin's load.
    limiter = new RateLimiter(parseConfig(config));
    return { onInbound: true, onDisconnect: true };
  },

  onConnect(_request) {
    return { tag: "accept", val: undefined };
  },

  onSubscribe(_connection, _channel) {
    return { tag: "allow" };
  },

  onInbound(message) {
    if (message.connection === undefined || message.connection === null) {
      return { tag: "pass" };
    }
    const id = message.connection.id.toString();
    if (limiter.allow(id, Number(nowMs()))) return { tag: "pass" };
    log("debug", "publish rate exceeded", [
      ["conn", id],
      ["channel", message.channel],
    ]);
    return { tag: "drop", val: `rate limit: at most ${limiter.perSecond} messages per second` };
  },

  onOutbound(_message) {
    return { data: undefined, meta: undefined, audience: { tag: "everyone" } };
  },

  onDisconnect(connection, _reason) {
    limiter.forget(connection.id.toString());
  },
};
