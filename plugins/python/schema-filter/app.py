"""Sluice plugin `schema-filter`: drops published messages whose `data` breaks the schema
configured for their channel (see schema.py). Exports `sluice:plugin/handler`."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

from schema import ConfigError, SchemaFilter

_filter = None


class Handler(exports.Handler):
    def init(self, config: str) -> types.Hooks:
        global _filter
        try:
            _filter = SchemaFilter(config)
        except ConfigError as e:
            raise Err(str(e))
        return types.Hooks.ON_INBOUND

    def on_connect(self, request: types.ConnectRequest) -> types.ConnectVerdict:
        return types.ConnectVerdict_Accept(None)

    def on_subscribe(self, connection: types.Connection, channel: str) -> types.SubscribeVerdict:
        return types.SubscribeVerdict_Allow()

    def on_inbound(self, message: types.InboundMessage) -> types.InboundVerdict:
        problem = _filter.check(message.channel, message.data)
        if problem is None:
            return types.InboundVerdict_Pass()
        host.log(host.Level.DEBUG, "message breaks schema", [("channel", message.channel), ("problem", problem)])
        return types.InboundVerdict_Drop(problem)

    def on_outbound(self, message: types.OutboundMessage) -> types.OutboundVerdict:
        return types.OutboundVerdict(None, None, types.Audience_Everyone())

    def on_disconnect(self, connection: types.Connection, reason: types.DisconnectReason) -> None:
        pass
