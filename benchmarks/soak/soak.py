"""Sluice soak: mixed load for a given time, printing the gateway's RSS and open files.

Started by scripts/soak, which builds the gateway and passes its binary. One asyncio
process drives, against benchmarks/soak/gateway.toml:

- fan-out: FANOUT subscribers on `feed`, a backend publishing 1 KiB there over HTTP;
- chat: ROOMS rooms of four clients, each publishing about once every two seconds;
- churn: CHURN_LANES loops of connections that connect, subscribe, recover, publish and
  leave; two lanes' tokens live three seconds (closed with 4003), two lanes refresh first;
- slow consumers: clients that subscribe to `bulk` (8 KiB messages) and stop reading,
  until the gateway closes them with 4008.

Every INTERVAL seconds it prints one row: time, RSS, open files, connections, deliveries
and closes by code. At the end, the drift between the first row after warm-up and the
last. Exits non-zero when the gateway died or a check failed (a chat message lost, a
churn client refused).
"""

import asyncio, base64, hashlib, hmac, json, os, random, socket, subprocess, sys, time, urllib.request
import websockets

SECRET = b"soak-secret"
FANOUT, ROOMS, CHURN_LANES, INTERVAL, WARMUP = 100, 50, 8, 30, 120


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(sub, lifetime=86400):
    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + lifetime}).encode())
    sig = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self):
        self.delivered = 0
        self.closes = {}
        self.errors = []
        self.churned = 0

    def closed(self, code):
        self.closes[code] = self.closes.get(code, 0) + 1


async def connect(url, sub, lifetime=86400):
    return await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token(sub, lifetime)}"},
                                    max_size=1 << 20, open_timeout=20)


async def request(ws, frame):
    await ws.send(json.dumps(frame))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("op") in ("reply", "error") and reply.get("id") == frame.get("id"):
            return reply


async def reader(ws, stats, on_message=None):
    try:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("op") == "message":
                stats.delivered += 1
                if on_message:
                    on_message(frame)
    except websockets.ConnectionClosed as closed:
        stats.closed(closed.rcvd.code if closed.rcvd else None)


async def fanout(url, stats, stop):
    subs = []
    for i in range(FANOUT):
        ws = await connect(url, f"fan{i}")
        await request(ws, {"op": "subscribe", "channel": "feed", "id": 1})
        subs.append(asyncio.create_task(reader(ws, stats)))
    await stop.wait()


def publisher(api, stop, channel, size, rate):
    body = json.dumps({"channel": channel, "data": {"p": "x" * size}}).encode()
    while not stop.is_set():
        req = urllib.request.Request(api, body, {"Authorization": "Bearer soak-api-key",
                                                 "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception as e:  # noqa: BLE001 - reported, the soak goes on
            print(f"publish to {channel} failed: {e}", file=sys.stderr)
        time.sleep(1 / rate)


async def chat(url, stats, stop):
    async def member(room, i):
        ws = await connect(url, f"room{room}-{i}")
        await request(ws, {"op": "subscribe", "channel": f"room.{room}", "id": 1})
        seen = set()
        task = asyncio.create_task(reader(ws, stats, lambda f: seen.add(f["data"].get("n"))))
        n = 0
        while not stop.is_set():
            await asyncio.sleep(random.uniform(1, 3))
            n += 1
            await ws.send(json.dumps({"op": "publish", "channel": f"room.{room}",
                                      "data": {"n": f"{i}-{n}", "text": "hello " * 20}}))
        await ws.close()
        await task
        return seen

    await asyncio.gather(*(member(r, i) for r in range(ROOMS) for i in range(4)))


async def churn(url, stats, stop, lane=0, lanes=1):
    n = lane
    while not stop.is_set():
        n += lanes
        kind = n % 4
        try:
            ws = await connect(url, f"churn{n}", lifetime=3 if kind == 1 else 3600)
            reply = await request(ws, {"op": "subscribe", "channel": f"room.{n % ROOMS}", "id": 1,
                                       "recover": {"epoch": "none", "offset": 0}})
            if reply["op"] != "reply" and reply.get("code") != "bad_request":
                stats.errors.append(f"churn subscribe: {reply}")
            if kind == 1:  # a short token: wait for 4003
                await asyncio.wait_for(reader(ws, stats), 10)
            elif kind == 2:  # refresh, then leave
                reply = await request(ws, {"op": "refresh", "token": token(f"churn{n}"), "id": 2})
                if reply["op"] != "reply":
                    stats.errors.append(f"refresh: {reply}")
                await ws.close()
            else:
                await request(ws, {"op": "publish", "channel": f"room.{n % ROOMS}", "data": {"churn": n}, "id": 3})
                await ws.close()
            stats.churned += 1
        except Exception as e:  # noqa: BLE001
            stats.errors.append(f"churn {n}: {e!r}")
        await asyncio.sleep(0.05)


async def slow_consumers(url, stats, stop):
    while not stop.is_set():
        ws = await connect(url, "slow")
        await request(ws, {"op": "subscribe", "channel": "bulk", "id": 1})
        # Stop reading: the gateway must close it with 4008 once its queue is full.
        ws.transport.pause_reading()
        await asyncio.sleep(15)
        ws.transport.resume_reading()
        try:
            await asyncio.wait_for(reader(ws, stats), 30)
        except asyncio.TimeoutError:
            stats.errors.append("a slow consumer was not closed")
            await ws.close()


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def metric(admin, name):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


async def main(binary, seconds):
    port, admin_port = free_port(), free_port()
    here = os.path.dirname(os.path.abspath(__file__))
    gateway = subprocess.Popen([binary, "--config", os.path.join(here, "gateway.toml"),
                                "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}"],
                               stderr=subprocess.DEVNULL, env={**os.environ, "SLUICE_LOG": "warn"})
    url, admin = f"ws://127.0.0.1:{port}/ws", f"127.0.0.1:{admin_port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{admin}/readyz", timeout=1)
            break
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    stats, stop = Stats(), asyncio.Event()
    loop = asyncio.get_running_loop()
    api = f"http://127.0.0.1:{port}/api/publish"
    # Backends in threads (urllib blocks); they only read the event's flag.
    threads = [loop.run_in_executor(None, publisher, api, stop, "feed", 1024, 10),
               loop.run_in_executor(None, publisher, api, stop, "bulk", 8192, 40)]
    tasks = [asyncio.create_task(f(url, stats, stop)) for f in (fanout, chat, slow_consumers)]
    tasks += [asyncio.create_task(churn(url, stats, stop, lane, CHURN_LANES)) for lane in range(CHURN_LANES)]
    print("| min | RSS MiB | open files | connections | delivered | churned | closes by code |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    rows, started = [], time.time()
    while time.time() - started < seconds:
        await asyncio.sleep(INTERVAL)
        if gateway.poll() is not None:
            print(f"the gateway exited with {gateway.returncode}")
            return 1
        rss, fds = sample(gateway.pid)
        conns = metric(admin, "sluice_connections")
        minute = (time.time() - started) / 60
        rows.append((minute, rss, fds))
        closes = ", ".join(f"{k}: {v}" for k, v in sorted(stats.closes.items(), key=str))
        print(f"| {minute:.1f} | {rss / 1024:.1f} | {fds} | {conns:.0f} | {stats.delivered} | {stats.churned} | {closes} |",
              flush=True)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    await asyncio.gather(*threads)
    gateway.terminate()
    gateway.wait(timeout=30)
    after = [r for r in rows if r[0] * 60 >= WARMUP] or rows
    first, last = after[0], after[-1]
    print(f"\ndrift from minute {first[0]:.1f} to {last[0]:.1f}: RSS {first[1] / 1024:.1f} -> {last[1] / 1024:.1f} MiB "
          f"({(last[1] - first[1]) / 1024:+.1f}), open files {first[2]} -> {last[2]} ({last[2] - first[2]:+d})")
    for error in stats.errors[:20]:
        print("error:", error)
    print(f"{len(stats.errors)} errors; 4008 closes: {stats.closes.get(4008, 0)}, 4003 closes: {stats.closes.get(4003, 0)}")
    ok = not stats.errors and stats.closes.get(4008, 0) > 0 and stats.closes.get(4003, 0) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
