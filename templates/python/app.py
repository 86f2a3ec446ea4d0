"""Sluice plugin `{{name}}`: drops client messages whose `data` is larger than `max_bytes`.
Exports the `sluice:plugin/handler` interface of wit/plugin.wit."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

from logic import ConfigError, drop_reason, parse_config

_max_bytes = 0


class Handler(exports.Handler):
    def init(self, config: str) -> types.Hooks:
        global _max_bytes
        try:
            _max_bytes = parse_config(config)
        except ConfigError as e:
            raise Err(str(e))
        return types.Hooks.ON_INBOUND

    def on_connect(self, request: types.ConnectRequest) -> types.ConnectVerdict:
        return types.ConnectVerdict_Accept(None)

    def on_subscribe(self, connection: types.Connection, channel: str) -> types.SubscribeVerdict:
        return types.SubscribeVerdict_Allow()

    def on_inbound(self, message: types.InboundMessage) -> types.InboundVerdict:
        reason = drop_reason(_max_bytes, message.data)
        if reason is None:
            return types.InboundVerdict_Pass()
        host.log(host.Level.INFO, "message too large", [("channel", message.channel)])
        return types.InboundVerdict_Drop(reason)

    def on_outbound(self, message: types.OutboundMessage) -> types.OutboundVerdict:
        return types.OutboundVerdict(None, None, types.Audience_Everyone())

    def on_disconnect(self, connection: types.Connection, reason: types.DisconnectReason) -> None:
        pass
