"""A TCP proxy for fault tests: put it between a part and the real service, then delay or cut it.

    with FaultProxy(("127.0.0.1", 5432)) as proxy:     # listens on proxy.port
        proxy.delay = 5.0                               # every new connection waits 5 s first
        proxy.down()                                    # refuse new connections, drop open ones
        proxy.up()

The service behind it is real (Rasa, PostgreSQL, Redis); only the network between them misbehaves.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target`; `down()`/`up()` and `delay` simulate outages and slowness."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.delay = 0.0
        self._available = threading.Event()
        self._available.set()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)

    # -- control -------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def down(self) -> None:
        """Refuse new connections and cut every open one, as a crashed or unreachable service would."""
        self._available.clear()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._open.clear()

    def up(self) -> None:
        self._available.set()

    def stop(self) -> None:
        self._stop.set()
        self.down()
        self._thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- forwarding ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._available.is_set():
                # A refused connection: close at once so the client sees a reset, not a hang.
                with contextlib.suppress(OSError):
                    client.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.delay:
            time.sleep(self.delay)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        pair = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set() and self._available.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
