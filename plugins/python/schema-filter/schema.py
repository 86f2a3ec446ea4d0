"""The schema filter's logic, free of WIT imports so that plain `python -m unittest` runs it.

Config (the plugin's `config` table, as JSON):

    {"schemas": {"orders.*": {"required": {"id": "integer", "item": "string"},
                              "optional": {"note": "string"},
                              "extra": false}}}

Each key of `schemas` is a channel name or a prefix ending in `*`; the first matching entry
(in config order) applies. A message's `data` must then be a JSON object holding every
`required` field with the given type, `optional` fields only with their type, and no other
field unless `extra` is true (the default). Channels that match no entry pass unchecked.
"""

import json

TYPES = ("string", "number", "integer", "boolean", "object", "array", "null", "any")


class ConfigError(Exception):
    """The `config` table is malformed; the message names the bad key."""


def _type_of(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches(expected, value):
    actual = _type_of(value)
    if expected == "any" or expected == actual:
        return True
    return expected == "number" and actual == "integer"


class Schema:
    def __init__(self, where, spec):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: must be a table")
        for key in spec:
            if key not in ("required", "optional", "extra"):
                raise ConfigError(f"{where}: unknown key `{key}` (expected required, optional, extra)")
        self.required = self._fields(f"{where}.required", spec.get("required", {}))
        self.optional = self._fields(f"{where}.optional", spec.get("optional", {}))
        self.extra = spec.get("extra", True)
        if not isinstance(self.extra, bool):
            raise ConfigError(f"{where}.extra: must be true or false")

    @staticmethod
    def _fields(where, fields):
        if not isinstance(fields, dict):
            raise ConfigError(f"{where}: must be a table of field = type")
        for name, kind in fields.items():
            if kind not in TYPES:
                raise ConfigError(f"{where}.{name}: unknown type {kind!r} (expected one of {', '.join(TYPES)})")
        return fields

    def problem(self, data):
        """Returns why `data` breaks this schema, or None when it conforms."""
        if not isinstance(data, dict):
            return f"data must be an object, not {_type_of(data)}"
        for name, kind in self.required.items():
            if name not in data:
                return f"data.{name} is required"
            if not _matches(kind, data[name]):
                return f"data.{name} must be {kind}, not {_type_of(data[name])}"
        for name, value in data.items():
            if name in self.required:
                continue
            if name in self.optional:
                if not _matches(self.optional[name], value):
                    return f"data.{name} must be {self.optional[name]}, not {_type_of(value)}"
            elif not self.extra:
                return f"data.{name} is not allowed"
        return None


class SchemaFilter:
    def __init__(self, config_json):
        try:
            config = json.loads(config_json)
        except ValueError as e:
            raise ConfigError(f"config is not JSON: {e}") from None
        if not isinstance(config, dict):
            raise ConfigError("config must be a table")
        for key in config:
            if key != "schemas":
                raise ConfigError(f"unknown config key `{key}` (expected `schemas`)")
        schemas = config.get("schemas")
        if not isinstance(schemas, dict) or not schemas:
            raise ConfigError("schemas: required, a table of channel pattern = schema")
        self.rules = [(pattern, Schema(f"schemas.{pattern}", spec)) for pattern, spec in schemas.items()]

    def schema_for(self, channel):
        for pattern, schema in self.rules:
            if pattern.endswith("*"):
                if channel.startswith(pattern[:-1]):
                    return schema
            elif channel == pattern:
                return schema
        return None

    def check(self, channel, data_json):
        """Returns why the message must be dropped, or None when it may pass."""
        schema = self.schema_for(channel)
        if schema is None:
            return None
        try:
            data = json.loads(data_json)
        except ValueError:
            return "data is not JSON"
        return schema.problem(data)
