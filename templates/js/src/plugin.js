// Sluice plugin `{{name}}`: drops client messages whose `data` is larger than `max_bytes`.
// Exports the `sluice:plugin/handler` interface of wit/plugin.wit.
import { log } from "sluice:plugin/host@0.1.0";
import { dropReason, parseConfig } from "./logic.js";

let config = null;

export const handler = {
  // A thrown string becomes init's error and fails the plugin's load.
  init(text) {
    config = parseConfig(text);
    return { onInbound: true };
  },
  onConnect(_request) {
    return { tag: "accept", val: undefined };
  },
  onSubscribe(_connection, _channel) {
    return { tag: "allow" };
  },
  onInbound(message) {
    const reason = dropReason(config, message.data);
    if (reason === null) return { tag: "pass" };
    log("info", "message too large", [["channel", message.channel]]);
    return { tag: "drop", val: reason };
  },
  onOutbound(_message) {
    return { data: undefined, meta: undefined, audience: { tag: "everyone" } };
  },
  onDisconnect(_connection, _reason) {},
};
