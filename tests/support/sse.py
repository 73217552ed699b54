"""A small Server-Sent Events client over http.client, for tests against a real gunicorn."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Event:
    event: str
    id: str | None
    data: Any
    received: float = field(default_factory=time.monotonic)


class EventStream:
    """GET an events URL and read its frames; `status` and `headers` are the answer's."""

    def __init__(self, url: str, headers: dict[str, str] | None = None,
                 timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", parts.path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.comments = 0

    def json(self) -> Any:
        return json.loads(self.resp.read())

    def events(self) -> Iterator[Event]:
        """Each event until the server ends the stream."""
        name, event_id, data = "message", None, []
        while True:
            raw = self.resp.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments += 1
            elif not line:
                if data:
                    yield Event(name, event_id, json.loads("\n".join(data)))
                name, event_id, data = "message", None, []
            else:
                key, _, value = line.partition(": ")
                if key == "event":
                    name = value
                elif key == "id":
                    event_id = value
                elif key == "data":
                    data.append(value)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
