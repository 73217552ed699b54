"""A TCP proxy in front of Redis that can hold back the reply to a command: a Redis that
answers later than the client's socket timeout, after it has already executed the command."""

from __future__ import annotations

import socket
import threading
import time


class SlowReplyProxy:
    def __init__(self, target: tuple[str, int], match: bytes = b"EVALSHA",
                 delay: float = 1.5) -> None:
        self.target, self.match, self.delay = target, match.upper(), delay
        self.armed = 0  # how many matching replies still to delay
        self.skip = 0   # how many matching commands to let through first
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, times: int = 1, skip: int = 0) -> None:
        with self._lock:
            self.armed, self.skip = times, skip

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            held = threading.Event()
            threading.Thread(target=self._up, args=(client, upstream, held), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, held),
                             daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, held: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.match in data.upper():
                    with self._lock:
                        if self.skip > 0:
                            self.skip -= 1
                        elif self.armed > 0:
                            self.armed -= 1
                            held.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(upstream)

    def _down(self, upstream: socket.socket, client: socket.socket,
              held: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if held.is_set():
                    held.clear()
                    time.sleep(self.delay)  # the slow Redis this proxy stands for
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
