"""The plugin's logic, free of WIT imports so that `python3 -m unittest` runs it natively."""

import json


class ConfigError(Exception):
    """The `config` table is malformed."""


def parse_config(text):
    """Reads `{"max_bytes": N}` and returns N."""
    n = json.loads(text).get("max_bytes")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"max_bytes: required, a whole number of at least 1 (config was {text})")
    return n


def drop_reason(max_bytes, data):
    """Why a message's `data` (JSON text) must be dropped, or None to let it pass."""
    if len(data.encode()) > max_bytes:
        return f"data is larger than {max_bytes} bytes"
    return None
