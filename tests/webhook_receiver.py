"""A real webhook receiver for tests and the bench: an HTTP server on loopback that checks
every request's Standard Webhooks signature with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    """Collects verified events; answers ``status`` (settable) to every POST.

    Attributes:
        events: verified deliveries in arrival order: ``{"id", "type", "data", "at"}``.
        rejected: requests whose signature did not verify (should stay empty).
    """

    def __init__(self, secret: str | None = None, status: int = 204) -> None:
        self.secret = secret
        self.status = status
        self.events: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items()}
                status = receiver.status
                try:
                    if receiver.secret is None:
                        raise WebhookVerificationError("no secret yet")
                    payload = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError as exc:
                    with receiver.lock:
                        receiver.rejected.append(str(exc))
                    status = 400
                else:
                    if 200 <= status < 300:
                        with receiver.lock:
                            receiver.events.append(
                                {
                                    "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                                    "type": payload["type"],
                                    "data": payload["data"],
                                    "at": time.time(),
                                }
                            )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/raregen"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events once ``count`` have arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.02)
        with self.lock:
            return list(self.events)

    def dump(self) -> str:
        return json.dumps(self.events, indent=1)
