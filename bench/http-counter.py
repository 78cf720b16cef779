#!/usr/bin/env python3
"""A webhook receiver for bench/burst.sh that counts, exactly, what a burst of senders
does to it (stdlib only, one asyncio thread, so every counter is updated without races):

  * open TCP connections: now and peak (from accept to close);
  * requests in flight: now and peak (from a request's complete header to the end of
    writing its response; with --delay-ms the answer waits that long first);
  * requests, by path and by (service, event) of alertcore's JSON document, and the
    time of the first and the last answer;
  * for a (service, event) received more than once: for each copy, when its
    connection was accepted, when its header was read and when it was answered, and the
    connection's number (from 1), to tell a sender's retry from a second delivery.

Every request on the data port is answered 200 '{"ok":true}' (HTTP/1.1, keep-alive,
Content-Length or chunked bodies). The statistics are served on a second port, so that
asking for them never shows up in them:

  GET    /stats                       the counters as JSON (by_key: "service event" -> n)
  GET    /stats?wait=N&timeout=S      first waits until N requests were answered
  DELETE /stats                       start over (peaks restart from what is open now)

  python3 bench/http-counter.py --port P --control-port C [--delay-ms MS] [--ready-file F]
"""
import argparse
import asyncio
import json
import resource
import sys
import time
from urllib.parse import parse_qs, urlsplit

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class Stats:
    def __init__(self):
        self.connections = 0
        self.in_flight = 0
        self.reset()

    def reset(self):
        self.peak_connections = self.connections
        self.peak_in_flight = self.in_flight
        self.accepted = 0
        self.requests = 0
        self.bad = 0
        self.by_path = {}
        self.by_key = {}
        self.seen = {}
        self.first = None
        self.last = None
        self.changed = asyncio.Event()

    def as_json(self):
        return {
            "requests": self.requests,
            "bad_requests": self.bad,
            "accepted_connections": self.accepted,
            "connections_now": self.connections,
            "peak_connections": self.peak_connections,
            "in_flight_now": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "first_answer": self.first,
            "last_answer": self.last,
            "by_path": self.by_path,
            "by_key": self.by_key,
            "repeats": {k: v for k, v in self.seen.items() if len(v) > 1},
        }


STATS = None
DELAY = 0.0


async def read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def serve(reader, writer):
    s = STATS
    s.connections += 1
    s.accepted += 1
    conn_no, accepted = s.accepted, time.time()
    s.peak_connections = max(s.peak_connections, s.connections)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            s.in_flight += 1
            s.peak_in_flight = max(s.peak_in_flight, s.in_flight)
            t_read = time.time()
            try:
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "?"
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await read_body(reader, headers)
                if DELAY:
                    await asyncio.sleep(DELAY)
                writer.write(OK)
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                s.bad += 1
                return
            finally:
                s.in_flight -= 1
            s.requests += 1
            s.by_path[path] = s.by_path.get(path, 0) + 1
            try:
                doc = json.loads(body)
                key = f'{doc.get("service")} {doc.get("event")}'
            except (ValueError, AttributeError):
                key = "(not alertcore JSON)"
            s.by_key[key] = s.by_key.get(key, 0) + 1
            now = time.time()
            s.seen.setdefault(key, []).append(
                (round(accepted, 4), round(t_read, 4), round(now, 4), conn_no))
            if s.first is None:
                s.first = now
            s.last = now
            s.changed.set()
            if headers.get("connection", "").lower() == "close":
                return
    finally:
        s.connections -= 1
        writer.close()


async def control(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target = head.decode("latin-1").split(" ")[:2]
        u = urlsplit(target)
        q = parse_qs(u.query)
        if method == "DELETE":
            STATS.reset()
        elif "wait" in q:
            want = int(q["wait"][0])
            deadline = time.monotonic() + float(q.get("timeout", ["60"])[0])
            while STATS.requests < want and time.monotonic() < deadline:
                STATS.changed.clear()
                try:
                    await asyncio.wait_for(STATS.changed.wait(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
        data = json.dumps(STATS.as_json()).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data) + data)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    global STATS, DELAY
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--ready-file")
    a = p.parse_args()
    DELAY = a.delay_ms / 1000
    STATS = Stats()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = await asyncio.start_server(serve, "127.0.0.1", a.port, backlog=4096)
    ctl = await asyncio.start_server(control, "127.0.0.1", a.control_port)
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write(f"{a.port} {a.control_port}\n")
    async with data, ctl:
        await asyncio.gather(data.serve_forever(), ctl.serve_forever())


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
