// Node.js peer on the `ws` package, speaking the benchmark subset of Sluice protocol v1:
// subscribe, publish (not to oneself), message with offset. The stack Sluice grew from.
// `node server.js [PORT]` serves ws://127.0.0.1:PORT/ws (any path).
"use strict";
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 8080);
const channels = new Map(); // name -> { offset, subscribers: Set<WebSocket> }

function channel(name) {
  let c = channels.get(name);
  if (!c) channels.set(name, (c = { offset: 0, subscribers: new Set() }));
  return c;
}

const idJson = (id) => (id === undefined ? "" : `,"id":${JSON.stringify(id)}`);

const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws) => {
  const mine = new Set();
  ws.on("message", (raw, isBinary) => {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      ws.send('{"op":"error","code":"bad_request","message":"bad frame"}');
      return;
    }
    const id = idJson(frame.id);
    if (frame.op === "subscribe") {
      const c = channel(frame.channel);
      c.subscribers.add(ws);
      mine.add(frame.channel);
      ws.send(`{"op":"reply"${id},"result":{"channel":${JSON.stringify(frame.channel)},"epoch":"node","offset":${c.offset},"recovered":false}}`);
    } else if (frame.op === "publish" && frame.data !== undefined) {
      const c = channel(frame.channel);
      c.offset += 1;
      // Encoded once, sent to every subscriber but the publisher.
      const out = `{"op":"message","channel":${JSON.stringify(frame.channel)},"offset":${c.offset},"data":${JSON.stringify(frame.data)}}`;
      for (const s of c.subscribers) if (s !== ws) s.send(out);
      ws.send(`{"op":"reply"${id},"result":{"offset":${c.offset}}}`);
    } else {
      ws.send(`{"op":"error"${id},"code":"bad_request","message":"unsupported"}`);
    }
  });
  ws.on("close", () => {
    for (const name of mine) channels.get(name)?.subscribers.delete(ws);
  });
});
wss.on("listening", () => console.log(`node peer listening on 127.0.0.1:${port}`));
