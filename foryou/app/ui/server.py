"""The web page's HTTP server: uvicorn in a background thread (so `foryou up` can serve it beside
its asyncio services, and tests can start and stop it), or in the foreground for `foryou ui`."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from foryou.app.ui.app import create_app
from foryou.app.ui.context import UiConfig


class UiServer:
    """`start()` binds host:port (0 = a free port) before returning; `url` is then the page's root."""

    def __init__(self, config: UiConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", access_log=False, lifespan="off")
        )
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise OSError(f"web page: cannot listen on {self.host}:{self.port} ({e.strerror or e})") from None
        self.port = sock.getsockname()[1]
        return sock

    def wait(self) -> None:
        """Until the server stops (KeyboardInterrupt reaches the caller: Ctrl-C, then `stop()`)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def start(self, timeout_s: float = 30.0) -> UiServer:
        self._sock = self._bind()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="foryou-ui", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web page's server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
