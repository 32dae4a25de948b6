"""A real HTTP helpdesk API on loopback for tests and demos (stdlib http.server in a thread, port 0).

Serves `GET /api/tickets?updated_since=…&cursor=…&limit=…` -> {"tickets": [...], "next_cursor": "…" | null} from a
JSONL file (re-read on every request, so a test can change the "helpdesk" between pulls), ordered by
(updated_at, id); naive timestamps mean Asia/Jakarta. Requires `Authorization: Bearer <token>` when a token is set.
Programmable faults, consumed one per request: `fail(status, times, retry_after=None)`, `slow(seconds, times)`,
`garble(times)` (a body that is not JSON), `reshape(body)` (a 200 with this JSON body instead of the page) and
`repeat_cursor(cursor)` (every page points at the same next cursor).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

JAKARTA = timezone(timedelta(hours=7))


def _instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=JAKARTA)


class HelpdeskServer:
    def __init__(self, tickets_file: Path, token: str | None = None, max_limit: int = 500):
        self.tickets_file = Path(tickets_file)
        self.token = token
        self.max_limit = max_limit
        self.faults: deque[tuple[str, object, float | None]] = deque()
        self.stuck_cursor: str | None = None
        self.requests: list[dict] = []  # query and whether the bearer token matched, per request
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self.faults.extend([("status", status, retry_after)] * times)

    def slow(self, seconds: float, times: int = 1) -> None:
        self.faults.extend([("sleep", seconds, None)] * times)

    def garble(self, times: int = 1) -> None:
        self.faults.extend([("garble", 0, None)] * times)

    def reshape(self, body) -> None:
        self.faults.append(("body", body, None))

    def repeat_cursor(self, cursor: str) -> None:
        self.stuck_cursor = cursor

    def __enter__(self) -> HelpdeskServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _page(self, query: dict[str, list[str]]) -> dict:
        lines = self.tickets_file.read_text(encoding="utf-8").splitlines()
        tickets = []
        for line in lines:
            try:
                ticket = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _instant(ticket.get("updated_at")) is not None:
                tickets.append(ticket)
        since = _instant(query.get("updated_since", [""])[0])
        if since is not None:
            tickets = [t for t in tickets if _instant(t["updated_at"]) >= since]
        tickets.sort(key=lambda t: (_instant(t["updated_at"]), str(t.get("id"))))
        offset = int(query.get("cursor", ["0"])[0] or 0)
        limit = min(int(query.get("limit", ["100"])[0]), self.max_limit)
        page = tickets[offset : offset + limit]
        more = offset + limit < len(tickets)
        return {"tickets": page, "next_cursor": self.stuck_cursor or (str(offset + limit) if more else None)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                authorised = server.token is None or self.headers.get("Authorization") == f"Bearer {server.token}"
                with server._lock:
                    server.requests.append(
                        {"path": parts.path, "query": query, "authorised": authorised, "at": time.monotonic()}
                    )
                    fault = server.faults.popleft() if server.faults else None
                if parts.path != "/api/tickets":
                    return self._send(404, {"error": "not found"})
                if not authorised:
                    return self._send(401, {"error": "invalid token"})
                if fault and fault[0] == "status":
                    headers = {"Retry-After": str(fault[2])} if fault[2] is not None else {}
                    return self._send(int(fault[1]), {"error": "injected fault"}, headers)
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                if fault and fault[0] == "garble":
                    payload = json.dumps(server._page(query)).encode()[:-7]  # cut off mid-document
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    return self.wfile.write(payload)
                self._send(200, fault[1] if fault and fault[0] == "body" else server._page(query))

        return Handler
