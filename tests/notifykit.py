"""Real receivers for notification tests: an SMTP message sink for aiosmtpd and an HTTP
endpoint (http.server on a free loopback port) that records each POST with its
signature header. Used by the alert, notification and training-reminder tests."""

from __future__ import annotations

import email
import socket
import threading
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scanbench.evaluation.notify import SIGNATURE_HEADER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailSink:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


class Endpoint:
    """An HTTP server on a free loopback port answering 204 to every POST after the
    first ``fail_first`` (answered ``status``); ``posts`` holds (path, body, signature
    header) of each accepted one; ``url`` ends in ``path``."""

    def __init__(self, fail_first: int = 0, status: int = 503, path: str = "/hook") -> None:
        self.posts: list[tuple[str, bytes, str]] = []
        self.fail_first, self.status, self.hits = fail_first, status, 0
        ep = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ep.hits += 1
                if ep.hits <= ep.fail_first:
                    self.send_response(ep.status)
                else:
                    ep.posts.append((self.path, body, self.headers[SIGNATURE_HEADER]))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[tuple[bytes, str]]:
        """(body, signature header) of each accepted POST."""
        return [(body, sig) for _, body, sig in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
