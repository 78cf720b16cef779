#!/usr/bin/env python3
"""Real SMTP test peer on loopback, built on aiosmtpd (Debian: apt-get install python3-aiosmtpd,
run with /usr/bin/python3; tests/it/peers.rs starts it for the integration tests).

Features:
  --tls none|starttls|implicit   (cert/key via --cert/--key; STARTTLS is optional
                                  unless --require-starttls)
  --auth-user/--auth-pass        enables AUTH PLAIN + LOGIN and makes AUTH mandatory
  --auth-allow-plaintext         allow AUTH without TLS (aiosmtpd refuses it by default)
  --fail RCPT=CODE               answer RCPT TO:<RCPT> with CODE (e.g. 451 temp, 550 perm)
  --refuse CMD=CODE[:N]          answer the first N MAIL, RCPT or DATA commands (CMD: mail,
                                 rcpt, data; DATA: the reply after the message) with CODE,
                                 then accept as usual; without :N every one. Refused
                                 messages are not stored. Repeatable, one per CMD.
  --maildir DIR                  every message -> DIR/NNNNNN.eml + DIR/NNNNNN.json
                                 (json: mail_from, rcpt_tos, auth_user, tls, peer, headers, body)
  --http-port P                  JSON API: GET /messages, GET /messages/N, GET /messages/N/raw,
                                 DELETE /messages ; GET /health
Prints 'READY smtp=PORT http=PORT' on stdout once listening (and writes --ready-file).
Only binds loopback.
"""
import argparse
import email
import email.policy
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOCK = threading.Lock()
MESSAGES = []  # list of dicts (without raw) ; raw kept separately
RAWS = []


class Handler:
    def __init__(self, args):
        self.args = args
        self.fail = {}
        for spec in args.fail or []:
            rcpt, code = spec.rsplit("=", 1)
            self.fail[rcpt.lower()] = int(code)
        # cmd -> [code, remaining or None (always)]
        self.refuse = {}
        for spec in args.refuse or []:
            cmd, rest = spec.split("=", 1)
            code, _, times = rest.partition(":")
            cmd = cmd.strip().lower()
            if cmd not in ("mail", "rcpt", "data"):
                raise SystemExit(f"--refuse {spec!r}: CMD must be mail, rcpt or data")
            self.refuse[cmd] = [int(code), int(times) if times else None]

    def refused(self, cmd):
        """The reply refusing this command, while --refuse says so (and counts it)."""
        rule = self.refuse.get(cmd)
        if rule is None:
            return None
        code, left = rule
        if left is not None:
            if left <= 0:
                return None
            rule[1] = left - 1
        text = "4.3.0 try again later (test sink)" if code < 500 else "5.7.1 refused by test sink"
        return f"{code} {text}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.refused("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.fail.get(address.lower())
        if code:
            return f"{code} {'4.0.0 try again later' if code < 500 else '5.1.1 rejected by test sink'}"
        reply = self.refused("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.refused("data")
        if reply:
            return reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            body_part = msg.get_body(preferencelist=("plain", "html"))
            body = body_part.get_content() if body_part is not None else ""
        except Exception:  # noqa: BLE001
            body = msg.get_payload(decode=False)
        try:
            html_part = msg.get_body(preferencelist=("html",))
            html = html_part.get_content() if html_part is not None else None
        except Exception:  # noqa: BLE001
            html = None
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode(errors="replace")
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth_user,
            "tls": bool(session.ssl) or self.args.tls == "implicit",
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "headers": {k: str(v) for k, v in msg.items()},
            "subject": str(msg.get("Subject", "")),
            "body": body if isinstance(body, str) else str(body),
            "html": html,
            "content_type": msg.get_content_type(),
            "received_at": time.time(),
        }
        with LOCK:
            rec["id"] = len(MESSAGES) + 1
            MESSAGES.append(rec)
            RAWS.append(raw)
            if self.args.maildir:
                base = os.path.join(self.args.maildir, f"{rec['id']:06d}")
                with open(base + ".eml.tmp", "wb") as f:
                    f.write(raw)
                with open(base + ".json.tmp", "w") as f:
                    json.dump(rec, f, indent=1)
                os.rename(base + ".eml.tmp", base + ".eml")
                os.rename(base + ".json.tmp", base + ".json")  # json last = "complete" marker
        return "250 Message accepted for delivery"


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


class Api(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # see http-sink.py: avoids 40 ms Nagle/delayed-ACK stalls

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        with LOCK:
            if parts == ["health"]:
                return self._send(200, {"ok": True})
            if parts == ["messages"]:
                return self._send(200, MESSAGES)
            if len(parts) >= 2 and parts[0] == "messages" and parts[1].isdigit():
                i = int(parts[1]) - 1
                if 0 <= i < len(MESSAGES):
                    if len(parts) == 3 and parts[2] == "raw":
                        return self._send(200, RAWS[i], "message/rfc822")
                    return self._send(200, MESSAGES[i])
        self._send(404, {"error": "not found"})

    def do_DELETE(self):
        with LOCK:
            MESSAGES.clear()
            RAWS.clear()
        self._send(200, {"ok": True})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--auth-user")
    ap.add_argument("--auth-pass")
    ap.add_argument("--auth-allow-plaintext", action="store_true")
    ap.add_argument("--fail", action="append", help="RCPT=CODE")
    ap.add_argument("--refuse", action="append", help="mail|rcpt|data=CODE[:N]")
    ap.add_argument("--maildir")
    ap.add_argument("--http-port", type=int)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # "Requiring AUTH while not requiring TLS" etc.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    assert args.host in ("127.0.0.1", "::1", "localhost"), "loopback only"

    if args.maildir:
        os.makedirs(args.maildir, exist_ok=True)

    kwargs = {}
    ctx = None
    if args.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    if args.tls == "starttls":
        kwargs["tls_context"] = ctx
        kwargs["require_starttls"] = args.require_starttls
    if args.auth_user is not None:
        kwargs["authenticator"] = make_authenticator(args.auth_user, args.auth_pass or "")
        kwargs["auth_required"] = True
        # aiosmtpd only knows about STARTTLS-TLS; with implicit TLS it would never
        # advertise AUTH unless auth_require_tls=False (the socket is TLS anyway).
        kwargs["auth_require_tls"] = not (args.auth_allow_plaintext or args.tls == "implicit")

    controller = Controller(
        Handler(args),
        hostname=args.host,
        port=args.port,
        ssl_context=ctx if args.tls == "implicit" else None,
        server_hostname="localhost",
        ready_timeout=10,
        **kwargs,
    )
    controller.start()

    httpd = None
    if args.http_port:
        httpd = ThreadingHTTPServer((args.host, args.http_port), Api)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    line = f"READY smtp={args.port} http={args.http_port or '-'}"
    print(line, flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(line + "\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    if httpd:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
