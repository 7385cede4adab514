"""A real webhook receiver for tests and the bench: an HTTP server on loopback
(pytest-httpserver, threaded) that checks every request's Standard Webhooks signature with the
``standardwebhooks`` package."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response


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
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(".*"), method="POST").respond_with_handler(
            self._answer
        )

    def _answer(self, request: Request) -> Response:
        body = request.get_data()
        headers = dict(request.headers.items())
        status = self.status
        try:
            if self.secret is None:
                raise WebhookVerificationError("no secret yet")
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            status = 400
        else:
            if 200 <= status < 300:
                with self.lock:
                    self.events.append(
                        {
                            "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                            "type": payload["type"],
                            "data": payload["data"],
                            "at": time.time(),
                        }
                    )
        return Response(b"", status)

    @property
    def url(self) -> str:
        return self.server.url_for("/hooks/raregen")

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.clear()
        self.server.stop()

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
