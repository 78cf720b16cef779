#!/usr/bin/env python3
"""Webhook receiver for tests (stdlib only: python3 http-sink.py ...).

From the shared testbed; adapted for alertcore: chained path switches, /fail and
/retry-after.

Any request to any path other than /__* is recorded and answered (default 200 '{"ok":true}').
Control paths:
  GET    /__requests           -> JSON list of recorded requests
  GET    /__requests?wait=N&timeout=S -> waits until >= N requests recorded (or timeout)
  DELETE /__requests           -> clear
  GET    /__health             -> {"ok":true}
Behaviour switches (path prefixes, which can be chained: /retry-after/3/fail/429/1/hook):
  /status/<code>/...     answer with that status code (e.g. /status/500/hook, /status/429/hook)
  /delay/<ms>/...        sleep before answering (timeouts)
  /flaky/<n>/...         first n requests to this exact path get 503, then 200 (retry tests)
  /fail/<code>/<n>/...   first n requests to this exact path get <code>, then 200
  /retry-after/<v>/...   send "Retry-After: <v>" with a 429 or 503 answer (default "1")
Options: --port, --host (loopback only), --cert/--key (HTTPS), --log FILE (JSONL, one line
per request, written before the response is sent), --require-header 'Name: value' (else 401),
--ready-file.
HTTP/1.1 keep-alive is supported (ThreadingHTTPServer + protocol_version HTTP/1.1).
"""
import argparse
import base64
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Condition()
REQS = []
FLAKY = {}
ARGS = None


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http-sink/1"
    # headers and body go out in 2 writes; without TCP_NODELAY, Nagle + the client's
    # delayed ACK cost ~40 ms per keep-alive request (measured: 21 req/s instead of >1000)
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def _reply(self, code, obj=None, body=None, ctype="application/json"):
        data = body if body is not None else json.dumps(obj if obj is not None else {"ok": code < 400}).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _control(self, u):
        if u.path == "/__health":
            return self._reply(200, {"ok": True})
        if u.path == "/__requests":
            if self.command == "DELETE":
                with LOCK:
                    REQS.clear()
                    FLAKY.clear()
                return self._reply(200, {"ok": True})
            q = parse_qs(u.query)
            want = int(q.get("wait", ["0"])[0])
            deadline = time.time() + float(q.get("timeout", ["10"])[0])
            with LOCK:
                while len(REQS) < want and time.time() < deadline:
                    LOCK.wait(max(0.0, deadline - time.time()))
                return self._reply(200, list(REQS))
        return self._reply(404, {"error": "unknown control path"})

    def _handle(self):
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        if u.path.startswith("/__"):
            return self._control(u)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            js = json.loads(text) if text else None
        except ValueError:
            js = None
        rec = {
            "method": self.command,
            "path": u.path,
            "query": u.query,
            "headers": {k: v for k, v in self.headers.items()},
            "body": text,
            "body_b64": None if text is not None else base64.b64encode(raw).decode(),
            "json": js,
            "tls": isinstance(self.connection, ssl.SSLSocket),
            "peer": list(self.client_address),
            "t": time.time(),
        }
        parts = [p for p in u.path.split("/") if p]
        code = 200
        retry_after = "1"
        if ARGS.require_header:
            name, _, val = ARGS.require_header.partition(":")
            if self.headers.get(name.strip()) != val.strip():
                code = 401
        # count this request against the exact path once, for /flaky and /fail
        with LOCK:
            seen = FLAKY.get(u.path, 0)
            FLAKY[u.path] = seen + 1
        while len(parts) >= 2:
            if parts[0] == "delay":
                time.sleep(int(parts[1]) / 1000.0)
            elif parts[0] == "status":
                code = int(parts[1])
            elif parts[0] == "flaky":
                if seen < int(parts[1]):
                    code = 503
            elif parts[0] == "retry-after":
                retry_after = parts[1]
            elif parts[0] == "fail" and len(parts) >= 3:
                if seen < int(parts[2]):
                    code = int(parts[1])
                parts = parts[1:]
            else:
                break
            parts = parts[2:]
        rec["status"] = code
        with LOCK:
            rec["seq"] = len(REQS) + 1
            REQS.append(rec)
            if ARGS.log:
                with open(ARGS.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            LOCK.notify_all()
        extra = {"Retry-After": retry_after} if code in (429, 503) else {}
        data = json.dumps({"ok": code < 400, "seq": rec["seq"]}).encode()
        self.send_response(code)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--log")
    ap.add_argument("--require-header")
    ap.add_argument("--ready-file")
    ARGS = ap.parse_args()
    assert ARGS.host in ("127.0.0.1", "::1", "localhost"), "loopback only"
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((ARGS.host, ARGS.port), H)
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        ctx.set_alpn_protocols(["http/1.1"])
        # handshake lazily in the per-connection thread, so a stalled client can't block accept()
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    line = f"READY http{'s' if ARGS.cert else ''}://{ARGS.host}:{srv.server_address[1]}"
    print(line, flush=True)
    if ARGS.ready_file:
        with open(ARGS.ready_file, "w") as f:
            f.write(line + "\n")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
