"""A Python `websockets` client over TLS for tests/tls.rs: trusts the CA file given,
subscribes to channel `py`, prints `ready`, then prints the first message's data as JSON
and exits. Usage: tls_client.py URL CA_FILE"""

import asyncio
import json
import ssl
import sys

import websockets


async def main(url: str, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    async with websockets.connect(url, ssl=context, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": "py", "id": 1}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["op"] == "reply", reply
        print("ready", flush=True)
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        print(json.dumps(message["data"]), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
